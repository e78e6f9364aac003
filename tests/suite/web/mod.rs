//! Test support for the web agenda: two offices with `[web]` on
//! 127.0.0.1, staff logins made through the admin socket, and a small
//! HTTP/1.1 client with a cookie jar (one connection per request).
//! Waiting is polling with a deadline.
#![allow(dead_code)]

pub mod webdriver;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{Cluster, DEADLINE, Office};
use puente::admin::staff_api::StaffAdded;

pub const TJ: usize = 0;
pub const SD: usize = 1;

/// Tijuana (holds the mx key) and San Diego, linked, each with a web
/// agenda in Tijuana's zone; started.
pub async fn two_offices() -> Cluster {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.lab.enable_web(TJ, "America/Tijuana").unwrap();
    c.lab.enable_web(SD, "America/Tijuana").unwrap();
    c.link(TJ, SD);
    c.start_all().await;
    c
}

pub async fn add_staff(o: &Office, name: &str, role: &str) -> StaffAdded {
    o.client().add_staff(name, role).await.expect("staff add")
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first `name="csrf" value="…"` of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

/// A browser without a browser: cookies kept between requests, a fixed
/// Accept-Language.
#[derive(Debug, Clone)]
pub struct Http {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
    pub accept_language: String,
}

pub fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Http {
    pub fn new(addr: SocketAddr, accept_language: &str) -> Http {
        Http {
            addr,
            cookies: BTreeMap::new(),
            accept_language: accept_language.to_string(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(&mut self, path: &str, body: &str) -> Answer {
        self.send(
            "POST",
            path,
            Some(body.as_bytes()),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .await
    }

    /// One request on a new connection; cookies from the answer are kept.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let body = body.unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept-Language: {}\r\nContent-Length: {}\r\n",
            self.addr,
            self.accept_language,
            body.len()
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // The server may answer and close before reading a large body.
        let sent = match stream.write_all(head.as_bytes()).await {
            Ok(()) => stream.write_all(body).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
                "{e}"
            );
        }
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 16384];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() =>
                {
                    break;
                }
                Ok(Err(e)) => panic!("reading the answer: {e}"),
                Err(_) => panic!("no answer within 20 s to {method} {path}"),
            }
        }
        let text = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        Answer {
            status,
            headers,
            body: body.to_string(),
        }
    }

    /// Opens the login link's page and signs in with its token; returns
    /// the agenda page it lands on.
    pub async fn sign_in(&mut self, login_url: &str) -> Answer {
        let path = &login_url[login_url.find("/login").unwrap()..];
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let token = path.split("token=").nth(1).unwrap().to_string();
        let answer = self
            .post(
                "/login",
                &form(&[("csrf", &page.csrf()), ("token", &token)]),
            )
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.header("location"), Some("/agenda"));
        let agenda = self.get("/agenda").await;
        assert_eq!(agenda.status, 200, "{}", agenda.body);
        agenda
    }
}

/// Polls an agenda page (as `http`) until it contains `text`.
pub async fn wait_for_page(http: &mut Http, path: &str, text: &str) -> Answer {
    let started = Instant::now();
    loop {
        let page = http.get(path).await;
        if page.status == 200 && page.body.contains(text) {
            return page;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{path} never showed {text:?}; last answer {}:\n{}",
            page.status,
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live rows of `outreach_events` at an office.
pub async fn event_ids(o: &Office) -> Vec<String> {
    let page = o
        .client()
        .list_rows("outreach_events", None, Some(1000), false)
        .await
        .unwrap();
    page.rows.into_iter().map(|r| r.id).collect()
}
