//! With tracing at TRACE, requests to the admin socket — sealed writes,
//! reveals, refused bodies — log one line each (method, path, status) and
//! no value. (In a process of its own: it installs a global
//! subscriber.)

use crate::support;

use support::*;

#[test]
fn admin_requests_never_log_values() {
    in_a_process_of_its_own(
        concat!(module_path!(), "::admin_requests_never_log_values"),
        || {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(admin_requests_under_a_trace_subscriber())
        },
    );
}

async fn admin_requests_under_a_trace_subscriber() {
    let capture = LogCapture::install_global();

    let secrets = ["Log-Secret-Name", "+52 664 LOG 0001", "Log-Shared-Title"];
    let n = admin_node(Some(TEST_IDENTITY));
    let s = n.socket.clone();
    let body = format!(
        r#"{{"full_name": "{}", "phone": "{}"}}"#,
        secrets[0], secrets[1]
    );
    let (code, _) = raw_request(
        &s,
        "PUT",
        "/v1/tables/residents/rows/r1",
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(code, 200);
    let (code, answer) =
        raw_request(&s, "GET", "/v1/tables/residents/rows/r1?reveal=true", None).await;
    assert_eq!(code, 200);
    assert!(answer.contains(secrets[0]));
    let (code, _) = raw_request(
        &s,
        "GET",
        "/v1/tables/residents/rows?reveal=true&limit=5",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw_request(
        &s,
        "PUT",
        "/v1/tables/outreach_events/rows/e1",
        Some(format!(r#"{{"title": "{}"}}"#, secrets[2]).as_bytes()),
    )
    .await;
    assert_eq!(code, 200);
    // Refused bodies holding values.
    for bad in [
        format!(r#"{{"full_name": "{}", "nope": 1}}"#, secrets[0]),
        format!(r#"{{"full_name": ["{}"]}}"#, secrets[0]),
        format!(r#""{}""#, secrets[0]),
        format!(r#"{{"full_name": "{}""#, secrets[0]),
    ] {
        let (code, answer) = raw_request(
            &s,
            "PUT",
            "/v1/tables/residents/rows/r2",
            Some(bad.as_bytes()),
        )
        .await;
        assert!(code == 400 || code == 404, "{code} {answer}");
        assert!(!answer.contains(secrets[0]), "{answer}");
    }
    n.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("admin request")
            && logs.contains("path=/v1/tables/residents/rows/r1")
            && logs.contains("status=200"),
        "{logs}"
    );
    assert!(!logs.contains("reveal=true"), "no query strings: {logs}");
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}
