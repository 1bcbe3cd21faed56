//! The push shapes of existing agents: Pyroscope's `/ingest` (raw and multipart) and
//! Parca's `WriteRaw` (Connect JSON and the gateway path), with their label quirks.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{
    harness::{Cinder, Http, enc},
    ingest::{ALL_TIME, cpu_profile, top},
};

fn total(http: &Http, server: &Cinder, query: &str) -> i64 {
    top(http, server, query, ALL_TIME)["total"]
        .as_i64()
        .unwrap()
}

fn values(http: &Http, server: &Cinder, label: &str) -> Value {
    http.get(
        &format!("{}/api/v1/labels/{label}/values?{ALL_TIME}", server.url()),
        false,
    )
    .json()
}

fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn pyroscope_ingest_raw_and_multipart() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let name = enc("shop.cpu{env=prod,otel.scope.name=pyroscope-nodejs}");
    let url = format!(
        "{}/ingest?name={name}&from=1700000000&until=1700000010&format=pprof&spyName=gospy",
        server.url()
    );
    let resp = http.post(
        &url,
        cpu_profile(1_700_000_000_000, &[(&["work", "main"], 5)]),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(values(&http, &server, "service_name"), json!(["shop"]));
    assert_eq!(
        values(&http, &server, "otel_scope_name"),
        json!(["pyroscope-nodejs"])
    );
    let query =
        r#"process_cpu:samples:count:cpu:nanoseconds:delta{service_name="shop",env="prod"}"#;
    assert_eq!(total(&http, &server, query), 5);

    // Pyroscope's Go agent sends multipart with a "profile" part (and others to ignore).
    let boundary = "cinder-test-boundary";
    let body = multipart(
        boundary,
        &[
            (
                "profile",
                &cpu_profile(1_700_000_020_000, &[(&["work", "main"], 3)]),
            ),
            ("sample_type_config", b"{}"),
        ],
    );
    let resp = http.send_with(
        http.raw()
            .post(&url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(total(&http, &server, query), 8);

    // Precise 400s.
    for (url, field) in [
        (
            format!("{}/ingest?name={name}&format=jfr", server.url()),
            "format",
        ),
        (format!("{}/ingest?format=pprof", server.url()), "name"),
        (
            format!("{}/ingest?name={}", server.url(), enc("app{a=b")),
            "name",
        ),
    ] {
        let resp = http.post(&url, cpu_profile(1, &[(&["x"], 1)]));
        assert_eq!(resp.status, 400, "{url}");
        assert_eq!(resp.json()["field"], field, "{url}");
    }
    let resp = http.send_with(
        http.raw()
            .post(&url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart(boundary, &[("other", b"x")])),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["field"], "profile");
}

#[test]
fn parca_write_raw_connect_json_and_gateway() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let request = |labels: Value, samples: Vec<String>| {
        json!({
            "normalized": true,
            "series": [{
                "labels": {"labels": labels},
                "samples": samples.into_iter().map(|s| json!({"rawProfile": s, "executableInfo": []})).collect::<Vec<_>>(),
            }]
        })
    };
    let labels = json!([
        {"name": "__name__", "value": "parca_agent_cpu"},
        {"name": "node", "value": "n1"},
        {"name": "process.runtime.name", "value": "nodejs"},
    ]);
    let good = request(
        labels.clone(),
        vec![
            b64(cpu_profile(1_700_000_000_000, &[(&["a", "main"], 4)])),
            b64(cpu_profile(1_700_000_010_000, &[(&["b", "main"], 6)])),
        ],
    );
    let connect = format!(
        "{}/profilestore.v1alpha1.ProfileStoreService/WriteRaw",
        server.url()
    );
    let resp = http.send_with(
        http.raw()
            .post(&connect)
            .header("content-type", "application/json")
            .body(good.to_string()),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json(), json!({}));
    let query =
        r#"parca_agent_cpu:samples:count:cpu:nanoseconds:delta{process_runtime_name="nodejs"}"#;
    assert_eq!(total(&http, &server, query), 10);

    // The gateway path takes the same JSON.
    let gateway = format!("{}/api/profiles/writeraw", server.url());
    let resp = http.post(&gateway, good.to_string().into_bytes());
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(total(&http, &server, query), 20);

    // One broken profile in a request stores none of it.
    let mixed = request(
        json!([{"name": "__name__", "value": "parca_agent_cpu"}, {"name": "node", "value": "n2"}]),
        vec![
            b64(cpu_profile(1_700_000_000_000, &[(&["a"], 1)])),
            b64(b"garbage".to_vec()),
        ],
    );
    let resp = http.post(&gateway, mixed.to_string().into_bytes());
    assert_eq!(resp.status, 400);
    assert!(!resp.json()["detail"].as_str().unwrap().is_empty());
    assert_eq!(values(&http, &server, "node"), json!(["n1"]));
    let resp = http.post(&gateway, b"{not json".to_vec());
    assert_eq!(resp.status, 400);
    // JSON that is not an object is no WriteRawRequest (serde alone reads `[]` as one).
    for body in ["[]", " [[]]", "null", "\"x\""] {
        let resp = http.post(&gateway, body.as_bytes().to_vec());
        assert_eq!(resp.status, 400, "{body}");
        assert_eq!(resp.json()["error"], "invalid WriteRaw request", "{body}");
    }
    let bad64 = request(labels, vec!["@@@".into()]);
    let resp = http.post(&gateway, bad64.to_string().into_bytes());
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["field"], "raw_profile");
}
