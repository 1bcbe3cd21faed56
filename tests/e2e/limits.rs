//! Hostile load against the real binary: each limit's attack, its precise error, and the
//! server still serving another client with that client's data intact.

use proto::{Function, Label, Line, Location, Message as _, Profile, Sample, ValueType};
use serde_json::Value;

use crate::{
    harness::{Cinder, Http, enc},
    ingest::{ALL_TIME, cpu_profile, top},
};

const CPU: &str = "process_cpu:samples:count:cpu:nanoseconds:delta";
const REQS: &str = "reqs:samples:count:cpu:nanoseconds:delta{}";

/// Pushes the bystander's profile: `main → work` worth 7.
fn push_bystander(http: &Http, server: &Cinder) {
    let body = cpu_profile(1_700_000_000_000, &[(&["work", "main"], 7)]);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job=bystander",
        server.url()
    );
    let resp = http.post(&url, body);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

/// The bystander's data is there, whole, and the server answers.
fn assert_bystander_intact(http: &Http, server: &Cinder) {
    assert_eq!(
        http.get(&format!("{}/healthy", server.url()), false).status,
        200
    );
    let top = top(
        http,
        server,
        &format!("{CPU}{{job=\"bystander\"}}"),
        ALL_TIME,
    );
    assert_eq!(top["total"], 7, "{top}");
}

fn detail(resp: &crate::harness::Resp) -> String {
    resp.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn query_url(server: &Cinder, job: &str, extra: &str) -> String {
    format!(
        "{}/api/v1/query?query={}&{ALL_TIME}&{extra}",
        server.url(),
        enc(&format!("{CPU}{{job=\"{job}\"}}"))
    )
}

#[test]
fn a_100000_frame_stack_is_truncated_and_every_report_answers() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push_bystander(&http, &server);
    let names: Vec<String> = (0..100_000).map(|i| format!("f{i}")).collect();
    let frames: Vec<&str> = names.iter().map(String::as_str).collect();
    let body = cpu_profile(1_700_000_000_000, &[(&frames, 5)]);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job=deep",
        server.url()
    );
    let resp = http.post(&url, body);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));

    for extra in [
        "report=flamegraph",
        "report=flamegraph&format=arrow",
        "report=flamegraph&max_nodes=2000000",
        "report=stacks",
        "report=stacks&format=json",
        "report=top",
        "report=pprof",
        "report=flamegraph&group_by=job",
        "report=flamegraph&mode=diff",
    ] {
        let url = if extra.contains("mode=diff") {
            let q = enc(&format!("{CPU}{{job=\"deep\"}}"));
            format!(
                "{}/api/v1/query?{extra}&query_a={q}&query_b={q}&start_a=0&end_a=4102444800000&start_b=0&end_b=4102444800000",
                server.url()
            )
        } else {
            query_url(&server, "deep", extra)
        };
        let resp = http.get(&url, false);
        assert_eq!(
            resp.status,
            200,
            "{extra}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert!(!resp.body.is_empty(), "{extra}");
    }

    // Kept: the 4,095 frames nearest the leaf, then one [truncated] frame at the root.
    let stacks = http
        .get(
            &query_url(&server, "deep", "report=stacks&format=json"),
            false,
        )
        .json();
    let stack = &stacks["stacks"][0];
    let ids: Vec<usize> = stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(ids.len(), 4096);
    let name = |id: usize| {
        stacks["frames"][id]["function"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(ids[0]), "f0", "the leaf is kept");
    assert_eq!(name(ids[4094]), "f4094");
    assert_eq!(name(ids[4095]), "[truncated]", "the root side is cut");
    assert_eq!(stacks["total"], 5, "the value is kept whole");

    let graph = http.get(&query_url(&server, "deep", "report=flamegraph"), false);
    let text = String::from_utf8(graph.body).unwrap();
    assert!(
        text.starts_with("{\"unit\":\"count\",\"total\":5,"),
        "{}",
        &text[..80]
    );
    assert!(text.contains("{\"name\":\"[truncated]\""));
    assert!(text.contains("{\"name\":\"f0\",\"self\":5,\"total\":5}"));
    assert_bystander_intact(&http, &server);
}

/// A profile of `samples` two-byte `sample {}` entries after a valid header: counted
/// without decoding.
fn many_empty_samples(samples: usize) -> Vec<u8> {
    let mut raw = Profile {
        sample_type: vec![ValueType { ty: 1, unit: 2 }],
        string_table: ["", "samples", "count"]
            .map(|s| s.as_bytes().to_vec())
            .to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend(std::iter::repeat_n([0x12u8, 0x00], samples).flatten());
    gzip(&raw)
}

#[test]
fn a_profile_over_the_sample_cap_is_413_naming_the_cap() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push_bystander(&http, &server);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job=huge",
        server.url()
    );
    let resp = http.post(&url, many_empty_samples(1_000_001));
    assert_eq!(resp.status, 413, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(
        detail(&resp),
        "the profile has 1000001 samples; the cap is 1000000 (--max-profile-samples)"
    );
    // The same through Parca's WriteRaw: refused whole.
    use base64::Engine as _;
    let ok = base64::engine::general_purpose::STANDARD
        .encode(cpu_profile(1_700_000_000_000, &[(&["x"], 1)]));
    let huge = base64::engine::general_purpose::STANDARD.encode(many_empty_samples(1_000_001));
    let body = serde_json::json!({"series": [
        {"labels": {"labels": [{"name": "__name__", "value": "process_cpu"}, {"name": "job", "value": "raw"}]},
         "samples": [{"rawProfile": ok}, {"rawProfile": huge}]}]});
    let resp = http.send_with(
        http.raw()
            .post(format!(
                "{}/profilestore.v1alpha1.ProfileStoreService/WriteRaw",
                server.url()
            ))
            .header("content-type", "application/json")
            .body(body.to_string()),
    );
    assert_eq!(resp.status, 413, "{}", String::from_utf8_lossy(&resp.body));
    let top = top(&http, &server, &format!("{CPU}{{job=\"raw\"}}"), ALL_TIME);
    assert_eq!(top["total"], 0, "nothing of a refused request is stored");
    let metrics = http.get(&format!("{}/metrics", server.url()), false);
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(
        metrics.contains(
            "cinder_rejected_total{endpoint=\"/api/v1/ingest\",reason=\"profile_too_large\"} 1"
        ),
        "{metrics}"
    );
    assert_bystander_intact(&http, &server);
}

/// A profile with `samples` samples over a few stacks and `padding` bytes of random,
/// unreferenced strings: megabytes on the wire, cheap to store.
fn wide_profile(samples: usize, padding: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let functions: Vec<Function> = (1..=16)
        .map(|id| Function {
            id,
            name: 5 + id as i64,
            ..Default::default()
        })
        .collect();
    let location = (1..=16)
        .map(|id| Location {
            id,
            line: vec![Line {
                function_id: id,
                line: id as i64,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let sample = (0..samples)
        .map(|_| Sample {
            location_id: vec![next() % 16 + 1, next() % 16 + 1, next() % 16 + 1],
            value: vec![(next() >> 40) as i64 | 1, (next() >> 30) as i64 | 1],
            ..Default::default()
        })
        .collect();
    let mut string_table: Vec<Vec<u8>> = ["", "samples", "count", "fn", "cpu", "nanoseconds"]
        .map(|s| s.as_bytes().to_vec())
        .to_vec();
    string_table.extend((1..=16).map(|i| format!("pkg.function{i}").into_bytes()));
    string_table.extend((0..padding / 64).map(|_| {
        (0..8)
            .flat_map(|_| next().to_le_bytes())
            .collect::<Vec<u8>>()
    }));
    let profile = Profile {
        sample_type: vec![ValueType { ty: 1, unit: 2 }, ValueType { ty: 4, unit: 5 }],
        sample,
        location,
        function: functions,
        string_table,
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { ty: 4, unit: 5 }),
        period: 10_000_000,
        ..Default::default()
    };
    gzip(&profile.encode_to_vec())
}

/// Pushes `bodies` at once, one thread each; the statuses, bodies and headers.
fn push_at_once(server: &Cinder, bodies: Vec<Vec<u8>>) -> Vec<crate::harness::Resp> {
    let threads: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let url = format!(
                "{}/api/v1/ingest?__name__=process_cpu&job=agent&instance=a{i}",
                server.url()
            );
            std::thread::spawn(move || Http::new().try_post(&url, body).expect("push"))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn eight_agents_pushing_multi_megabyte_profiles_at_once_are_all_accepted() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push_bystander(&http, &server);
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| wide_profile(20_000, 3 << 20, i + 1))
        .collect();
    assert!(bodies.iter().all(|b| b.len() > 2 << 20), "multi-MB bodies");
    for resp in push_at_once(&server, bodies) {
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
    let top = top(&http, &server, &format!("{CPU}{{job=\"agent\"}}"), ALL_TIME);
    assert!(top["total"].as_i64().unwrap() > 0);
    assert_bystander_intact(&http, &server);
}

#[test]
fn an_exhausted_budget_is_429_with_retry_after_and_stores_nothing_of_it() {
    // A budget smaller than one profile (which then runs alone) and no patience.
    let server = Cinder::start(&[
        "--ingest-memory",
        "1MiB",
        "--admission-wait",
        "1ms",
        "--push-concurrency",
        "8",
    ]);
    let http = Http::new();
    push_bystander(&http, &server);
    let bodies: Vec<Vec<u8>> = (0..6)
        .map(|i| wide_profile(60_000, 1 << 20, i + 1))
        .collect();
    let responses = push_at_once(&server, bodies);
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    let accepted = responses.iter().filter(|r| r.status == 200).count();
    assert!(
        !refused.is_empty(),
        "some pushes must find the budget in use"
    );
    assert_eq!(refused.len() + accepted, 6);
    for resp in &refused {
        assert_eq!(resp.headers["retry-after"], "5");
        assert!(detail(resp).contains("--ingest-memory"), "{}", detail(resp));
        assert_eq!(resp.json()["error"], "too many requests");
    }
    // Exactly the accepted pushes are stored: one series each.
    let url = format!(
        "{}/api/v1/query_range?query={}&{ALL_TIME}",
        server.url(),
        enc(&format!("{CPU}{{job=\"agent\"}}"))
    );
    let range = http.get(&url, false).json();
    assert_eq!(
        range["series"].as_array().unwrap().len(),
        accepted,
        "{range}"
    );
    assert_bystander_intact(&http, &server);
}

#[test]
fn a_full_push_queue_is_429() {
    let server = Cinder::start(&[
        "--push-concurrency",
        "1",
        "--admission-queue",
        "0",
        "--admission-wait",
        "1ms",
    ]);
    let http = Http::new();
    push_bystander(&http, &server);
    let bodies: Vec<Vec<u8>> = (0..6)
        .map(|i| wide_profile(60_000, 1 << 20, i + 1))
        .collect();
    let responses = push_at_once(&server, bodies);
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert!(!refused.is_empty());
    for resp in refused {
        assert!(resp.headers.contains_key("retry-after"));
        assert!(
            detail(resp).contains("too many push requests"),
            "{}",
            detail(resp)
        );
    }
    assert_bystander_intact(&http, &server);
}

/// A profile whose samples each carry `request_id` = a distinct value (and a `thread`).
fn labelled_profile(samples: usize, distinct: usize) -> Vec<u8> {
    let mut strings: Vec<String> = [
        "",
        "samples",
        "count",
        "fn",
        "request_id",
        "thread",
        "t1",
        "cpu",
        "nanoseconds",
    ]
    .map(String::from)
    .to_vec();
    let first_value = strings.len() as i64;
    strings.extend((0..distinct).map(|i| format!("req-{i}")));
    let sample = (0..samples)
        .map(|i| Sample {
            location_id: vec![1],
            value: vec![1],
            label: vec![
                Label {
                    key: 4,
                    str: first_value + (i % distinct) as i64,
                    ..Default::default()
                },
                Label {
                    key: 5,
                    str: 6,
                    ..Default::default()
                },
            ],
        })
        .collect();
    let profile = Profile {
        sample_type: vec![ValueType { ty: 1, unit: 2 }],
        sample,
        location: vec![Location {
            id: 1,
            line: vec![Line {
                function_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        function: vec![Function {
            id: 1,
            name: 3,
            ..Default::default()
        }],
        string_table: strings.into_iter().map(String::into_bytes).collect(),
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { ty: 7, unit: 8 }),
        period: 10_000_000,
        ..Default::default()
    };
    gzip(&profile.encode_to_vec())
}

#[test]
fn crowded_sample_labels_are_dropped_but_their_values_kept() {
    let server = Cinder::start(&["--max-sample-label-values", "50"]);
    let http = Http::new();
    let url = format!("{}/api/v1/ingest?__name__=reqs&job=ids", server.url());
    let resp = http.post(&url, labelled_profile(500, 100));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let values = http
        .get(
            &format!(
                "{}/api/v1/labels/request_id/values?{ALL_TIME}",
                server.url()
            ),
            false,
        )
        .json();
    assert_eq!(values, serde_json::json!([]), "request_id is left off");
    let threads = http
        .get(
            &format!("{}/api/v1/labels/thread/values?{ALL_TIME}", server.url()),
            false,
        )
        .json();
    assert_eq!(threads, serde_json::json!(["t1"]), "other labels stay");
    let top = top(&http, &server, REQS, ALL_TIME);
    assert_eq!(top["total"], 500, "totals stay exact");
    let metrics =
        String::from_utf8(http.get(&format!("{}/metrics", server.url()), false).body).unwrap();
    assert!(
        metrics.contains(
            "cinder_rejected_total{endpoint=\"/api/v1/ingest\",reason=\"sample_label_values\"} 500"
        ),
        "{metrics}"
    );
}

#[test]
fn series_past_the_limit_are_refused_not_dropped() {
    let server = Cinder::start(&["--max-series-per-type", "20"]);
    let http = Http::new();
    push_bystander(&http, &server);
    // 15 series of request ids: fits (with the bystander's type apart).
    let url = format!("{}/api/v1/ingest?__name__=reqs&job=ids", server.url());
    assert_eq!(http.post(&url, labelled_profile(15, 15)).status, 200);
    // 30 more would make 45: refused whole, with 429.
    let url = format!("{}/api/v1/ingest?__name__=reqs&job=more", server.url());
    let resp = http.post(&url, labelled_profile(30, 30));
    assert_eq!(resp.status, 429, "{}", String::from_utf8_lossy(&resp.body));
    let detail = detail(&resp);
    assert!(
        detail.contains("the limit is 20 (--max-series-per-type)"),
        "{detail}"
    );
    assert!(resp.headers.contains_key("retry-after"));
    let top = top(&http, &server, REQS, ALL_TIME);
    assert_eq!(top["total"], 15, "nothing of the refused push is stored");
    assert_bystander_intact(&http, &server);
}

#[test]
fn label_count_and_length_limits_are_400_naming_the_limit() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push_bystander(&http, &server);
    let body = || cpu_profile(1_700_000_000_000, &[(&["x"], 1)]);
    let many: String = (0..30).map(|i| format!("&l{i}=v")).collect();
    let url = format!("{}/api/v1/ingest?__name__=process_cpu{many}", server.url());
    let resp = http.post(&url, body());
    assert_eq!(resp.status, 400);
    assert_eq!(
        detail(&resp),
        "the series has 31 labels; the limit is 30 (--max-labels-per-series)"
    );
    assert_eq!(resp.json()["field"], "labels");
    let long = "v".repeat(2049);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job={long}",
        server.url()
    );
    let resp = http.post(&url, body());
    assert_eq!(resp.status, 400);
    assert!(
        detail(&resp).contains("2049 bytes long; the limit is 2048 (--max-label-value-length)"),
        "{}",
        detail(&resp)
    );
    assert_eq!(resp.json()["field"], "job");
    assert_bystander_intact(&http, &server);
}

#[test]
fn query_bounds_are_400_up_front_and_times_are_clamped() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push_bystander(&http, &server);
    let q = enc(&format!("{CPU}{{}}"));
    let get = |path: &str| http.get(&format!("{}{path}", server.url()), false);

    let resp = get(&format!(
        "/api/v1/query_range?query={q}&start=0&end=4102444800000&step=1s"
    ));
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["field"], "step");
    assert!(
        detail(&resp).contains("the limit is 11000"),
        "{}",
        detail(&resp)
    );

    let resp = get(&format!(
        "/api/v1/query?report=flamegraph&query={q}&{ALL_TIME}&max_nodes=2000001"
    ));
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["field"], "max_nodes");
    let labels: String = (0..11).map(|i| format!("l{i},")).collect();
    let resp = get(&format!(
        "/api/v1/query?report=top&query={q}&{ALL_TIME}&group_by={labels}"
    ));
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["field"], "group_by");

    // Times far past what the store holds are clamped, not refused.
    for range in [
        "start=-99999999999999999999&end=99999999999999999999",
        "start=-9223372036854775808&end=9223372036854775807",
        "start=0",
    ] {
        let resp = get(&format!("/api/v1/query?report=top&query={q}&{range}"));
        assert_eq!(
            resp.status,
            200,
            "{range}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        if range.contains("99999") {
            assert_eq!(resp.json()["total"], 7, "{range}");
        }
        let resp = get(&format!("/api/v1/query_range?query={q}&{range}"));
        assert_eq!(
            resp.status,
            200,
            "{range}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
    let resp = get(&format!("/api/v1/query?report=top&query={q}&start=soon"));
    assert_eq!(resp.status, 400);
    let resp = get(&format!(
        "/api/v1/query?report=top&query={q}&start=10&end=5"
    ));
    assert_eq!(resp.status, 400);
    assert_bystander_intact(&http, &server);
}

#[test]
fn a_query_over_the_series_limit_is_400_never_a_subset() {
    let server = Cinder::start(&["--query-max-series", "3"]);
    let http = Http::new();
    push_bystander(&http, &server);
    for i in 0..4 {
        let body = cpu_profile(1_700_000_000_000, &[(&["x"], 1)]);
        let url = format!(
            "{}/api/v1/ingest?__name__=process_cpu&job=many&instance=i{i}",
            server.url()
        );
        assert_eq!(http.post(&url, body).status, 200);
    }
    let resp = http.get(&query_url(&server, "many", "report=top"), false);
    assert_eq!(resp.status, 400);
    assert_eq!(
        detail(&resp),
        "query selects 4 series; the limit is 3 (--query-max-series): narrow the selector"
    );
    let url = format!(
        "{}/api/v1/query_range?query={}&{ALL_TIME}",
        server.url(),
        enc(&format!("{CPU}{{job=\"many\"}}"))
    );
    assert_eq!(http.get(&url, false).status, 400);
    assert_bystander_intact(&http, &server);
}

#[test]
fn a_query_past_the_timeout_is_503_json() {
    let server = Cinder::start(&["--query-timeout", "1ms"]);
    let http = Http::new();
    push_bystander(&http, &server);
    let body = wide_profile(100_000, 0, 3);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job=slow",
        server.url()
    );
    assert_eq!(http.post(&url, body).status, 200);
    let resp = http.get(&query_url(&server, "slow", "report=flamegraph"), false);
    assert_eq!(resp.status, 503, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["error"], "query timeout");
    assert!(
        detail(&resp).contains("--query-timeout (1ms)"),
        "{}",
        detail(&resp)
    );
    assert_eq!(
        http.get(&format!("{}/healthy", server.url()), false).status,
        200
    );
}

#[test]
fn answers_are_compressed_only_when_asked() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let body = wide_profile(20_000, 0, 9);
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&job=big",
        server.url()
    );
    assert_eq!(http.post(&url, body).status, 200);
    for extra in [
        "report=stacks",
        "report=stacks&format=json",
        "report=flamegraph",
        "report=flamegraph&format=arrow",
    ] {
        let url = query_url(&server, "big", extra);
        let plain = http.get(&url, false);
        assert_eq!(plain.status, 200);
        assert!(!plain.headers.contains_key("content-encoding"), "{extra}");
        let zipped = http.get(&url, true);
        assert_eq!(
            zipped
                .headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("gzip"),
            "{extra}: {:?}",
            zipped.headers
        );
        let mut inflated = Vec::new();
        use std::io::Read as _;
        flate2::read::GzDecoder::new(&zipped.body[..])
            .read_to_end(&mut inflated)
            .unwrap();
        if extra.contains("json") {
            let a: Value = serde_json::from_slice(&inflated).unwrap();
            assert_eq!(a, plain.json(), "{extra}");
        } else {
            assert_eq!(inflated.len(), plain.body.len(), "{extra}");
        }
        assert!(zipped.body.len() < plain.body.len(), "{extra}");
        let zstd = http.send_with(http.raw().get(&url).header("accept-encoding", "zstd"));
        assert_eq!(zstd.headers["content-encoding"], "zstd", "{extra}");
    }
    // Answers under 1 KiB are not worth it.
    let small = http.get(&query_url(&server, "big", "report=top&limit=1"), true);
    assert!(small.body.len() < 1024);
    assert!(!small.headers.contains_key("content-encoding"));
    // pprof is gzip already and stays as it is.
    let url = query_url(&server, "big", "report=pprof");
    let resp = http.get(&url, true);
    assert!(!resp.headers.contains_key("content-encoding"));
}

/// Serves `body` to every request on a free local port, forever (a thread per test).
fn serve_forever(body: Vec<u8>) -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[test]
fn a_scrape_past_the_series_limit_fails_naming_it() {
    let target = serve_forever(cpu_profile(1_700_000_000_000, &[(&["work", "main"], 3)]));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cinder.yaml");
    std::fs::write(
        &config,
        format!(
            "scrape_configs:\n  - job_name: fake\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n    profiling_config:\n      pprof_config:\n        memory: {{enabled: false}}\n        block: {{enabled: false}}\n        mutex: {{enabled: false}}\n        process_cpu: {{enabled: false}}\n        goroutine: {{enabled: true}}\n"
        ),
    )
    .unwrap();
    let server = Cinder::start(&[
        "--config",
        config.to_str().unwrap(),
        "--max-series-per-type",
        "0",
    ]);
    let http = Http::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        let body = http
            .get(&format!("{}/api/v1/targets", server.url()), false)
            .json();
        let error = body["jobs"][0]["targets"][0]["last_error"]
            .as_str()
            .map(str::to_owned);
        if let Some(error) = error {
            break error;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scrape failed: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(
        error.starts_with("goroutine: refused: profile type goroutine:")
            && error.ends_with("would have 1 series; the limit is 0 (--max-series-per-type)"),
        "{error}"
    );
    let metrics =
        String::from_utf8(http.get(&format!("{}/metrics", server.url()), false).body).unwrap();
    assert!(
        metrics.contains("cinder_rejected_total{endpoint=\"scrape\",reason=\"series_limit\"}"),
        "{metrics}"
    );
    let types = http
        .get(&format!("{}/api/v1/profile-types", server.url()), false)
        .json();
    assert_eq!(types, serde_json::json!([]), "nothing was stored");
}

#[test]
fn a_query_over_the_query_memory_pool_is_refused_with_422_and_the_server_goes_on() {
    let server = Cinder::start(&["--query-memory", "256KiB"]);
    let http = Http::new();
    // 20,000 distinct stacks: their aggregation needs far more than 256 KiB.
    let names: Vec<String> = (0..20_000).map(|i| format!("main.f{i}")).collect();
    let stacks: Vec<(Vec<&str>, i64)> = names
        .iter()
        .map(|n| (vec![n.as_str(), "main.main"], 1))
        .collect();
    let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|(f, v)| (f.as_slice(), *v)).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let url = format!("{}/api/v1/ingest?__name__=cpu&job=big", server.url());
    assert_eq!(http.post(&url, cpu_profile(now, &stacks)).status, 200);
    let query = enc("cpu:samples:count:cpu:nanoseconds:delta{job=\"big\"}");
    let url = format!(
        "{}/api/v1/query?report=top&format=json&query={query}&{ALL_TIME}",
        server.url()
    );
    let resp = http.get(&url, false);
    assert_eq!(resp.status, 422, "{}", String::from_utf8_lossy(&resp.body));
    let body = resp.json();
    assert!(
        body["detail"].as_str().unwrap().contains("--query-memory"),
        "{body}"
    );
    assert!(body["error"].is_string(), "{body}");
    // The server is fine, and says what it refused.
    assert_eq!(
        http.get(&format!("{}/healthy", server.url()), false).status,
        200
    );
    let metrics = http.get(&format!("{}/metrics", server.url()), false).body;
    assert!(
        String::from_utf8_lossy(&metrics).contains("reason=\"query_memory\""),
        "counted"
    );
}
