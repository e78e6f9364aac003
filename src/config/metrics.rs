//! The `[metrics]` section of the node config: an optional TCP listener
//! for Prometheus (the admin socket's `GET /v1/metrics` needs none).
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:7490"   # the default; loopback only
//! # allow_remote = true       # needed for any address but loopback
//! ```
//!
//! Metrics hold no row values, but they do name the offices and say how
//! many residents there are and when offices talk: an address other than
//! loopback is refused unless `allow_remote = true` says it is meant.
//!
//! Owns: parsing and checking that section.
//! Must not: bind anything (the metrics server does).

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// Where metrics are served when `[metrics]` gives no `listen`.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:7490";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// `[metrics]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsFile {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    allow_remote: bool,
}

impl MetricsFile {
    pub(crate) fn check(self, file: &Path, text: &str) -> Result<MetricsConfig, ConfigError> {
        let listen = match &self.listen {
            None => {
                DEFAULT_METRICS_LISTEN
                    .parse::<SocketAddr>()
                    .map_err(|e| ConfigError::File {
                        path: file.to_path_buf(),
                        message: format!("metrics.listen default: {e}"),
                    })?
            }
            Some(l) => {
                let addr = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                    ConfigError::at(
                        file,
                        text,
                        Some(l.span()),
                        format!(
                            "metrics.listen: `{}` is not a socket address; write IP:PORT such as {DEFAULT_METRICS_LISTEN}",
                            l.get_ref()
                        ),
                    )
                })?;
                if !addr.ip().is_loopback() && !self.allow_remote {
                    return Err(ConfigError::at(
                        file,
                        text,
                        Some(l.span()),
                        format!(
                            "metrics.listen: {addr} is not a loopback address, and metrics name the offices and count their records; serve them on 127.0.0.1 (a Prometheus on this machine, or an SSH tunnel), or add allow_remote = true to [metrics] if a firewall keeps strangers out"
                        ),
                    ));
                }
                addr
            }
        };
        Ok(MetricsConfig { listen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(section: &str) -> Result<MetricsConfig, String> {
        let text = format!("[metrics]\n{section}");
        #[derive(Deserialize)]
        struct Doc {
            metrics: MetricsFile,
        }
        let doc: Doc = toml::from_str(&text).map_err(|e| e.to_string())?;
        doc.metrics
            .check(Path::new("/etc/puente/puente.toml"), &text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn loopback_by_default_and_remote_only_when_allowed() {
        assert_eq!(
            check("").unwrap().listen.to_string(),
            DEFAULT_METRICS_LISTEN
        );
        assert_eq!(
            check("listen = \"[::1]:9100\"").unwrap().listen.to_string(),
            "[::1]:9100"
        );
        for addr in ["0.0.0.0:7490", "192.0.2.7:7490", "[::]:7490"] {
            let e = check(&format!("listen = \"{addr}\"")).unwrap_err();
            assert!(e.contains("is not a loopback address"), "{e}");
            assert!(e.contains("allow_remote = true"), "{e}");
            let ok = check(&format!("listen = \"{addr}\"\nallow_remote = true")).unwrap();
            assert_eq!(ok.listen.to_string(), addr);
        }
        assert!(
            check("listen = \"localhost\"")
                .unwrap_err()
                .contains("IP:PORT")
        );
        assert!(check("port = 1").unwrap_err().contains("unknown field"));
    }
}
