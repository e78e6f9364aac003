//! Rate limits that cannot be turned on others: a calendar token is
//! looked up before anything is counted, so bad guesses from the address
//! every client shares behind a proxy (127.0.0.1) never make a good feed
//! answer 429; behind `[web] trusted_proxy` clients are counted apart by
//! `X-Forwarded-For`, which is ignored from anyone else; an https
//! `[web] url` (a TLS proxy in front) makes cookies `Secure` and pages
//! send HSTS. The IPv6 /64 keying is a unit test of the limiter
//! (src/web/ratelimit.rs).

use crate::cluster;
use crate::web;

use cluster::*;
use web::{Http, TJ, add_staff};

fn path_of(url: &str) -> String {
    url[url.find("/cal/").unwrap()..].to_string()
}

/// One office with the web agenda and `extra` lines in its `[web]`.
async fn office(extra: &str) -> (Cluster, std::net::SocketAddr) {
    let mut c = Cluster::new(&[("tijuana", true)]);
    let addr = c.lab.enable_web(TJ, "America/Tijuana").unwrap();
    let config = c[TJ].config.clone();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();
    c.start_all().await;
    (c, addr)
}

const BAD: &str = "/cal/0000000000000000000000000000000000000000/outreach.ics";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_a_shared_address_never_refuse_a_good_feed() {
    let (c, addr) = office("").await;
    let staff = add_staff(&c[TJ], "feed-tj", "viewer").await;
    let good = path_of(staff.calendar_url.as_deref().unwrap());
    let mut h = Http::new(addr, "es");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(h.get(BAD).await.status);
    }
    // The guesser is limited (control: the limit is really reached)…
    assert_eq!(&statuses[..10], &[404; 10]);
    assert_eq!(&statuses[10..], &[429; 2]);
    // …and the good feed from the same address is answered.
    let feed = h.get(&good).await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert!(feed.body.contains("BEGIN:VCALENDAR"), "{}", feed.body);
    // Behind no trusted proxy, X-Forwarded-For changes nothing: the
    // guesser cannot step out of its limit by writing the header.
    let a = h
        .send("GET", BAD, None, &[("X-Forwarded-For", "127.0.0.55")])
        .await;
    assert_eq!(a.status, 429);
    // Without TLS and with no https url: no Secure cookie, no HSTS.
    let login = h.get("/login").await;
    assert!(login.header("Strict-Transport-Security").is_none());
    assert!(
        login
            .headers("Set-Cookie")
            .iter()
            .all(|c| !c.contains("Secure")),
        "{:?}",
        login.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_clients_are_counted_apart() {
    let (c, addr) =
        office("trusted_proxy = [\"127.0.0.1\"]\nurl = \"https://agenda.tijuana.example.org\"\n")
            .await;
    let _ = &c;
    let mut h = Http::new(addr, "es");
    let from = |client: &'static str| [("X-Forwarded-For", client)];
    // Client A spends its ten guesses and is limited.
    for _ in 0..10 {
        let a = h.send("GET", BAD, None, &from("127.0.0.10")).await;
        assert_eq!(a.status, 404);
    }
    assert_eq!(
        h.send("GET", BAD, None, &from("127.0.0.10")).await.status,
        429
    );
    // Client B, through the same proxy, is not.
    assert_eq!(
        h.send("GET", BAD, None, &from("127.0.0.11")).await.status,
        404
    );
    // The right-most address counts: a client that puts a made-up address
    // in front is still itself.
    assert_eq!(
        h.send("GET", BAD, None, &from("127.0.0.99, 127.0.0.10"))
            .await
            .status,
        429
    );
    // The proxy's own requests without the header count as the proxy.
    assert_eq!(h.get(BAD).await.status, 404);
    // An https url: cookies are Secure and pages send HSTS.
    let login = h.get("/login").await;
    assert!(
        login
            .header("Strict-Transport-Security")
            .is_some_and(|v| v.contains("max-age=")),
        "{:?}",
        login.headers
    );
    let cookies = login.headers("Set-Cookie");
    assert!(!cookies.is_empty());
    assert!(cookies.iter().all(|c| c.contains("Secure")), "{cookies:?}");
}
