//! The Debian packaging metadata (`[package.metadata.deb]` in Cargo.toml,
//! for `cargo deb`): every file it lists exists, files land where the unit
//! and the docs expect them, and the maintainer scripts parse.
//!
//! Owns: fast checks of what `cargo deb` would package.
//! Must not: run `cargo deb` (CI skips it: building a release package takes
//! minutes; build it by hand with `cargo install cargo-deb && cargo deb`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("Cargo.toml has a [package.metadata.deb] table")
        .clone()
}

/// (source, dest, mode) of every asset.
fn assets() -> Vec<(String, String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .expect("assets is a list")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("each asset is [source, dest, mode]");
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            assert_eq!(a.len(), 3, "asset {a:?} is not [source, dest, mode]");
            (s(0), s(1), s(2))
        })
        .collect()
}

/// Where an asset ends up: `dest` itself, or `dest` + the file name when
/// `dest` is a folder (ends with `/`).
fn installed_path(source: &str, dest: &str) -> String {
    let dest = format!("/{dest}");
    match dest.strip_suffix('/') {
        Some(dir) => format!(
            "{dir}/{}",
            Path::new(source).file_name().unwrap().to_str().unwrap()
        ),
        None => dest,
    }
}

#[test]
fn every_asset_exists() {
    let assets = assets();
    assert!(!assets.is_empty());
    for (source, dest, mode) in &assets {
        assert!(
            u32::from_str_radix(mode, 8).is_ok_and(|m| m <= 0o777),
            "{source}: mode {mode} is not octal permissions"
        );
        assert!(
            !dest.starts_with('/'),
            "{source}: cargo-deb wants a relative dest, not {dest}"
        );
        if let Some(binary) = source.strip_prefix("target/release/") {
            // Built by `cargo deb`; it must be one of this crate's binaries.
            assert_eq!(
                binary,
                env!("CARGO_PKG_NAME"),
                "{source} is not a binary this crate builds"
            );
            continue;
        }
        let path = root().join(source);
        assert!(
            path.is_file(),
            "asset {source} does not exist ({})",
            path.display()
        );
    }
}

#[test]
fn files_land_where_the_unit_and_docs_expect_them() {
    let installed: Vec<String> = assets()
        .iter()
        .map(|(source, dest, _)| installed_path(source, dest))
        .collect();
    for want in [
        "/usr/bin/puente",
        "/usr/share/doc/puente/README.md",
        "/usr/share/doc/puente/examples/tijuana.toml",
        "/usr/share/doc/puente/examples/san-diego.toml",
        "/usr/share/doc/puente/examples/schema.toml",
        "/usr/share/doc/puente/operations.md",
    ] {
        assert!(
            installed.iter().any(|p| p == want),
            "{want} is not packaged: {installed:?}"
        );
    }
    for unit in [
        "config/puente.service",
        "config/puente-backup.service",
        "config/puente-backup.timer",
    ] {
        let unit = std::fs::read_to_string(root().join(unit)).unwrap();
        for line in unit.lines() {
            if let Some(doc) = line.strip_prefix("Documentation=file:") {
                assert!(
                    installed.iter().any(|p| p == doc),
                    "the unit's {doc} is not packaged"
                );
            }
            if let Some(exec) = line.strip_prefix("ExecStart=") {
                let bin = exec.split_whitespace().next().unwrap();
                assert!(
                    installed.iter().any(|p| p == bin),
                    "the unit runs {bin}, which is not packaged"
                );
            }
        }
    }
}

#[test]
fn the_systemd_units_are_found_by_cargo_deb() {
    let meta = deb_metadata();
    let units = meta["systemd-units"]
        .as_array()
        .expect("systemd-units is a list of units");
    let names: Vec<&str> = units
        .iter()
        .map(|u| u["unit-name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [env!("CARGO_PKG_NAME"), "puente-backup"]);
    for (unit, kinds) in units.iter().zip([&["service"][..], &["service", "timer"]]) {
        let dir = unit["unit-scripts"].as_str().unwrap();
        let name = unit["unit-name"].as_str().unwrap();
        // cargo-deb looks for UNIT-SCRIPTS/<unit-name>.<kind>.
        for kind in kinds {
            assert!(
                root().join(dir).join(format!("{name}.{kind}")).is_file(),
                "{name}.{kind}"
            );
        }
        // Not enabled or started before the admin has written a node
        // config (or chosen to back up).
        assert_eq!(unit["enable"].as_bool(), Some(false), "{name}");
        assert_eq!(unit["start"].as_bool(), Some(false), "{name}");
    }
}

#[test]
fn maintainer_scripts_parse_and_leave_room_for_the_systemd_steps() {
    let dir = root().join(deb_metadata()["maintainer-scripts"].as_str().unwrap());
    let mut found = Vec::new();
    for name in ["preinst", "postinst", "prerm", "postrm"] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        found.push(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#!/bin/sh\n"),
            "{name} must start with #!/bin/sh"
        );
        assert!(text.contains("\nset -e\n"), "{name} must `set -e`");
        // With systemd-units, cargo-deb inserts its steps at this token.
        assert!(
            text.contains("\n#DEBHELPER#\n"),
            "{name} lacks the #DEBHELPER# line"
        );
        let out = Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("run sh -n");
        assert!(
            out.status.success(),
            "sh -n {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(found, ["postinst", "postrm"]);
}

#[test]
fn postinst_makes_the_account_and_config_folder_the_unit_needs() {
    let dir = root().join("debian");
    let postinst = std::fs::read_to_string(dir.join("postinst")).unwrap();
    for want in [
        "--system",
        "--home /var/lib/puente",
        "--no-create-home",
        "--shell /usr/sbin/nologin",
        "install -d -o root -g puente -m 0750 /etc/puente",
    ] {
        assert!(postinst.contains(want), "postinst lacks `{want}`");
    }
    let unit = std::fs::read_to_string(root().join("config/puente.service")).unwrap();
    for want in [
        "User=puente",
        "Group=puente",
        "ConfigurationDirectoryMode=0750",
    ] {
        assert!(unit.lines().any(|l| l == want), "the unit lacks {want}");
    }
    let postrm = std::fs::read_to_string(dir.join("postrm")).unwrap();
    assert!(postrm.contains("\"$1\" = \"purge\""));
    assert!(
        !postrm.contains("rm -r"),
        "postrm must leave data and keys in place"
    );
}

/// The from-source install does every step the package does: each asset
/// and each unit installed, then the package's own postinst (user, groups,
/// /etc/puente), and the script parses.
#[test]
fn the_from_source_install_does_what_the_package_does() {
    let script = std::fs::read_to_string(root().join("tools/install-from-source")).unwrap();
    for (source, dest, _) in assets() {
        let from = if source == "target/release/puente" {
            "$bin".to_string()
        } else {
            format!("$here/{source}")
        };
        assert!(
            script.contains(&from),
            "tools/install-from-source leaves out {source}"
        );
        let to = installed_path(&source, &dest);
        let folder = Path::new(&to)
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            script.contains(&to) || script.contains(&format!("{folder}/")),
            "tools/install-from-source does not put {source} at {to}"
        );
    }
    for unit in deb_metadata()["systemd-units"].as_array().unwrap() {
        let name = unit["unit-name"].as_str().unwrap();
        for suffix in [".service", ".timer"] {
            let file = format!("config/{name}{suffix}");
            if root().join(&file).exists() {
                assert!(
                    script.contains(&format!("$here/{file}")),
                    "tools/install-from-source leaves out {file}"
                );
            }
        }
    }
    assert!(script.contains("sh \"$here/debian/postinst\" configure"));
    let postinst = std::fs::read_to_string(root().join("debian/postinst")).unwrap();
    for step in [
        "addgroup --system --quiet puente\n",
        "puente-reveal",
        "adduser --system",
        "install -d -o root -g puente -m 0750 /etc/puente",
    ] {
        assert!(
            postinst.contains(step),
            "the postinst no longer does {step:?}"
        );
    }
    let parsed = Command::new("sh")
        .arg("-n")
        .arg(root().join("tools/install-from-source"))
        .status()
        .unwrap();
    assert!(parsed.success());
}
