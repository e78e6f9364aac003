//! The `[web]` section of the node config: the staff agenda and calendar
//! feed the daemon serves over HTTP.
//!
//! ```toml
//! [web]
//! listen = "127.0.0.1:7480"        # the default; loopback needs no TLS
//! # url = "https://agenda.tijuana.example.org"   # what staff links start with
//! # trusted_proxy = "127.0.0.1"   # a reverse proxy (or a list) whose
//! #                               # X-Forwarded-For is believed
//! # tls_cert = "certs/web.crt"     # required for any non-loopback address
//! # tls_key = "certs/web.key"
//! time_zone = "America/Tijuana"    # default: the system's zone
//! ```
//!
//! Owns: parsing and checking that section (a non-loopback address without
//! TLS is refused, the zone must exist, trusted proxies are IP addresses),
//! and whether staff reach it over https.
//! Must not: read the certificate or key (the web server loads them).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// Where the web agenda listens when `[web]` gives no `listen`.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:7480";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub tls: Option<WebTls>,
    /// The address staff type, without a trailing slash (login and calendar
    /// links start with it). Default: from `listen`.
    pub url: Option<String>,
    /// The IANA zone the agenda is shown in. Default: the system's.
    pub time_zone: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: the
    /// header is ignored and every client is its connection's address).
    pub trusted_proxies: Vec<IpAddr>,
}

impl WebConfig {
    /// The address staff open from their own phone or computer: `url`,
    /// unless it names this machine only (localhost, a loopback address).
    /// `None`: the only address is loopback, so links work on the server
    /// alone.
    pub fn public_url(&self) -> Option<&str> {
        let url = self.url.as_deref()?;
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let host = host.to_ascii_lowercase();
        let loopback = host == "localhost"
            || host.ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        (!loopback).then_some(url)
    }

    /// Why links given to staff would not open on their devices, naming
    /// what to set; `None` when `url` is a public address.
    pub fn links_warning(&self) -> Option<String> {
        if self.public_url().is_some() {
            return None;
        }
        Some(format!(
            "these links start with {}, which only this server can open: staff cannot use them on their phones. Set the address staff open as [web] url in the node config (e.g. url = \"https://agenda.tijuana.example.org\", served over TLS: [web] tls_cert and tls_key, or a reverse proxy in front of {}), restart puente, then remove and add this login again",
            self.base_url(),
            self.listen
        ))
    }

    /// The start of every link given to staff.
    pub fn base_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.listen)
    }

    /// Whether staff reach the agenda over https (its own TLS, or a TLS
    /// proxy in front named by an https `url`): cookies are then
    /// `Secure` and pages send HSTS.
    pub fn https(&self) -> bool {
        self.tls.is_some()
            || self
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }
}

/// `trusted_proxy` as written: one address or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[web]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebFile {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    tls_cert: Option<Spanned<String>>,
    #[serde(default)]
    tls_key: Option<Spanned<String>>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxy: Option<Spanned<OneOrMany>>,
}

impl WebFile {
    /// Checks the section; `base` resolves relative paths.
    pub(crate) fn check(
        self,
        file: &Path,
        text: &str,
        base: &Path,
    ) -> Result<WebConfig, ConfigError> {
        let err = |span, message: String| ConfigError::at(file, text, Some(span), message);
        let listen = match &self.listen {
            None => DEFAULT_WEB_LISTEN
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError::File {
                    path: file.to_path_buf(),
                    message: format!("web.listen default: {e}"),
                })?,
            Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|_| {
                err(
                    l.span(),
                    format!(
                        "web.listen: `{}` is not a socket address; write IP:PORT such as {DEFAULT_WEB_LISTEN}",
                        l.get_ref()
                    ),
                )
            })?,
        };
        let path = |p: &Spanned<String>, key: &str| {
            if p.get_ref().trim().is_empty() {
                Err(err(
                    p.span(),
                    format!("web.{key}: the path is empty; give a PEM file"),
                ))
            } else {
                Ok(base.join(p.get_ref()))
            }
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some(WebTls {
                cert: path(c, "tls_cert")?,
                key: path(k, "tls_key")?,
            }),
            (None, None) => None,
            (Some(c), None) => {
                return Err(err(
                    c.span(),
                    "web.tls_cert is set without web.tls_key; give both PEM files (certificate chain and private key)".into(),
                ));
            }
            (None, Some(k)) => {
                return Err(err(
                    k.span(),
                    "web.tls_key is set without web.tls_cert; give both PEM files (certificate chain and private key)".into(),
                ));
            }
        };
        if !listen.ip().is_loopback() && tls.is_none() {
            let span = self.listen.as_ref().map_or(0..0, Spanned::span);
            return Err(err(
                span,
                format!(
                    "web.listen: {listen} is reachable from other machines, and staff logins must not cross a network in clear text; set web.tls_cert and web.tls_key (PEM files), or listen on 127.0.0.1 behind a TLS reverse proxy"
                ),
            ));
        }
        let url = match self.url {
            None => None,
            Some(u) => {
                let text = u.get_ref().trim().trim_end_matches('/');
                let ok = (text.starts_with("https://") || text.starts_with("http://"))
                    && text.len() > "https://".len()
                    && !text.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(err(
                        u.span(),
                        format!(
                            "web.url: `{}` is not a web address; write the address staff open, e.g. https://agenda.tijuana.example.org",
                            u.get_ref()
                        ),
                    ));
                }
                Some(text.to_string())
            }
        };
        let time_zone = match self.time_zone {
            None => None,
            Some(z) => {
                if jiff::tz::TimeZone::get(z.get_ref()).is_err() {
                    return Err(err(
                        z.span(),
                        format!(
                            "web.time_zone: `{}` is not a time zone this machine knows; write an IANA name such as America/Tijuana or America/Los_Angeles",
                            z.get_ref()
                        ),
                    ));
                }
                Some(z.into_inner())
            }
        };
        let trusted_proxies = match self.trusted_proxy {
            None => Vec::new(),
            Some(p) => {
                let span = p.span();
                let list = match p.into_inner() {
                    OneOrMany::One(a) => vec![a],
                    OneOrMany::Many(list) => list,
                };
                let mut out = Vec::with_capacity(list.len());
                for a in list {
                    let ip = a.trim().parse::<IpAddr>().map_err(|_| {
                        err(
                            span.clone(),
                            format!(
                                "web.trusted_proxy: `{a}` is not an IP address; write the address your reverse proxy connects from, e.g. \"127.0.0.1\" or [\"127.0.0.1\", \"::1\"]"
                            ),
                        )
                    })?;
                    out.push(ip);
                }
                out
            }
        };
        Ok(WebConfig {
            listen,
            tls,
            url,
            time_zone,
            trusted_proxies,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;
    use crate::config::access::{Principal, Role, Who};
    use std::path::Path;

    const BASE: &str = "name = \"tijuana\"\nlisten = \"127.0.0.1:7441\"\ndata_dir = \"data\"\nadmin_socket = \"a.sock\"\nschema = \"schema.toml\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n";

    fn parse(extra: &str) -> Result<NodeConfig, String> {
        NodeConfig::parse(
            Path::new("/etc/puente/puente.toml"),
            &format!("{BASE}{extra}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn web_is_off_without_its_section_and_loopback_by_default() {
        assert!(parse("").unwrap().web.is_none());
        let web = parse("[web]\n").unwrap().web.unwrap();
        assert_eq!(web.listen.to_string(), "127.0.0.1:7480");
        assert_eq!(web.base_url(), "http://127.0.0.1:7480");
        let web = parse("[web]\nlisten = \"0.0.0.0:443\"\ntls_cert = \"web.crt\"\ntls_key = \"web.key\"\nurl = \"https://agenda.example.org/\"\ntime_zone = \"America/Tijuana\"\n")
            .unwrap()
            .web
            .unwrap();
        assert_eq!(
            web.tls.as_ref().unwrap().cert,
            Path::new("/etc/puente/web.crt")
        );
        assert_eq!(web.base_url(), "https://agenda.example.org");
        assert_eq!(web.time_zone.as_deref(), Some("America/Tijuana"));
    }

    #[test]
    fn a_public_address_needs_tls_and_mistakes_are_named() {
        let e = parse("[web]\nlisten = \"0.0.0.0:7480\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/puente/puente.toml:10:")
                && e.contains("set web.tls_cert and web.tls_key"),
            "{e}"
        );
        let e = parse("[web]\nlisten = \"0.0.0.0:7480\"\ntls_cert = \"c.pem\"\n").unwrap_err();
        assert!(e.contains("without web.tls_key"), "{e}");
        let e = parse("[web]\nlisten = \"here\"\n").unwrap_err();
        assert!(
            e.contains("web.listen: `here` is not a socket address"),
            "{e}"
        );
        let e = parse("[web]\ntime_zone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(e.contains("web.time_zone") && e.contains("IANA"), "{e}");
        let e = parse("[web]\nurl = \"agenda\"\n").unwrap_err();
        assert!(e.contains("web.url"), "{e}");
        let e = parse("[web]\nport = 1\n").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn access_lists_roles_by_user_and_group() {
        let c = parse("[access]\nread = [\"group:puente\"]\nadmin = [\"user:0\"]\n").unwrap();
        assert!(c.access.configured);
        assert_eq!(
            c.access.grants,
            vec![
                (Role::Read, Principal::Group(Who::Name("puente".into()))),
                (Role::Admin, Principal::User(Who::Id(0))),
            ]
        );
        assert!(!parse("").unwrap().access.configured);
        let e = parse("[access]\nwrite = [\"puente\"]\n").unwrap_err();
        assert!(
            e.contains(":10:") && e.contains("access.write: `puente` names no user or group"),
            "{e}"
        );
        let e = parse("[access]\nsudo = []\n").unwrap_err();
        assert!(e.contains("sudo"), "{e}");
    }
}
