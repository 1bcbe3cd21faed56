//! `value_per_second` sums per-series rates; the label endpoints honour `start`/`end`.

use crate::{
    harness::{Cinder, Http, enc},
    ingest::cpu_profile,
};

const CPU: &str = "process_cpu:samples:count:cpu:nanoseconds:delta";
const T0: i64 = 1_700_000_000_000;

/// `cpu_profile` samples every 10 ms over 10 s: 1,000 samples are one core.
fn one_core(time_ms: i64) -> Vec<u8> {
    cpu_profile(time_ms, &[(&["spin", "main"], 1000)])
}

fn push(http: &Http, server: &Cinder, labels: &str, body: Vec<u8>) {
    let url = format!(
        "{}/api/v1/ingest?__name__=process_cpu&{labels}",
        server.url()
    );
    let resp = http.post(&url, body);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

fn range(http: &Http, server: &Cinder, selector: &str, extra: &str) -> serde_json::Value {
    let url = format!(
        "{}/api/v1/query_range?query={}&start={T0}&end={}&step=60s&{extra}",
        server.url(),
        enc(&format!("{CPU}{selector}")),
        T0 + 59_999
    );
    let resp = http.get(&url, false);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

fn cores(point: &serde_json::Value) -> f64 {
    point["value_per_second"].as_f64().unwrap() / 1e9
}

#[test]
fn ten_one_core_targets_summed_by_job_read_ten_cores() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    for i in 0..10 {
        // Six back-to-back 10 s profiles per target inside the one 60 s bucket.
        for k in 0..6 {
            push(
                &http,
                &server,
                &format!("job=api&instance=i{i}"),
                one_core(T0 + k * 10_000),
            );
        }
    }
    let summed = range(&http, &server, "{job=\"api\"}", "sum_by=job");
    let series = summed["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{summed}");
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{summed}");
    assert!((cores(&points[0]) - 10.0).abs() < 1e-9, "{summed}");
    assert_eq!(points[0]["value"], 60_000);

    let apart = range(&http, &server, "{job=\"api\"}", "");
    let series = apart["series"].as_array().unwrap();
    assert_eq!(series.len(), 10);
    for s in series {
        assert!((cores(&s["points"][0]) - 1.0).abs() < 1e-9, "{s}");
    }
}

#[test]
fn pprof_labels_splitting_a_profile_into_series_still_sum_to_its_rate() {
    use proto::{Function, Label, Line, Location, Message as _, Profile, Sample, ValueType};
    let server = Cinder::start(&[]);
    let http = Http::new();
    // One 10 s, one-core profile whose samples are split over 4 threads (4 series).
    let strings = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "spin",
        "thread",
        "t0",
        "t1",
        "t2",
        "t3",
    ];
    let profile = Profile {
        sample_type: vec![ValueType { ty: 1, unit: 2 }],
        sample: (0..4)
            .map(|t| Sample {
                location_id: vec![1],
                value: vec![250],
                label: vec![Label {
                    key: 6,
                    str: 7 + t,
                    ..Default::default()
                }],
            })
            .collect(),
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
            name: 5,
            ..Default::default()
        }],
        string_table: strings.map(|s| s.as_bytes().to_vec()).to_vec(),
        time_nanos: T0 * 1_000_000,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { ty: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    };
    push(&http, &server, "job=threads", profile.encode_to_vec());
    let summed = range(&http, &server, "{job=\"threads\"}", "sum_by=job");
    let point = &summed["series"][0]["points"][0];
    assert!((cores(point) - 1.0).abs() < 1e-9, "{summed}");
}

#[test]
fn label_endpoints_filter_by_start_and_end() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    push(&http, &server, "job=old&region=eu", one_core(T0));
    push(&http, &server, "job=new&zone=z1", one_core(T0 + 3_600_000));
    let get = |path: &str| {
        let resp = http.get(&format!("{}{path}", server.url()), false);
        assert_eq!(
            resp.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        resp.json()
    };
    let (early, late) = (
        format!("start={}&end={}", T0 - 1000, T0 + 1000),
        format!("start={}&end={}", T0 + 3_599_000, T0 + 3_601_000),
    );
    assert_eq!(
        get(&format!("/api/v1/labels/job/values?{early}")),
        serde_json::json!(["old"])
    );
    assert_eq!(
        get(&format!("/api/v1/labels/job/values?{late}")),
        serde_json::json!(["new"])
    );
    let names = get(&format!("/api/v1/labels?{early}"));
    assert!(
        names.as_array().unwrap().contains(&"region".into()),
        "{names}"
    );
    assert!(
        !names.as_array().unwrap().contains(&"zone".into()),
        "{names}"
    );
    let q = enc(&format!("{CPU}{{}}"));
    assert_eq!(
        get(&format!("/api/v1/labels/job/values?query={q}&{late}")),
        serde_json::json!(["new"])
    );
    assert_eq!(
        get(&format!(
            "/api/v1/labels/job/values?query={q}&start=0&end=4102444800000"
        )),
        serde_json::json!(["new", "old"])
    );
    assert_eq!(
        get("/api/v1/labels/job/values?start=0&end=1000"),
        serde_json::json!([])
    );
}
