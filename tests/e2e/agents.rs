//! The agents people run, end to end: Pyroscope's Connect push (SDKs, Alloy), Pyroscope's
//! `/ingest` text and speedscope formats, and OTLP profiles (the OpenTelemetry eBPF
//! profiler through the collector) over OTLP/HTTP and gRPC. Each pushes, then reads the
//! totals and functions back through the query API; bad inputs get the protocol's error
//! and store nothing.

use std::io::Write as _;

use opentelemetry_proto::tonic::{
    collector::profiles::v1development::{
        ExportProfilesServiceRequest, ExportProfilesServiceResponse,
        profiles_service_client::ProfilesServiceClient,
    },
    common::v1::{AnyValue, KeyValue, any_value::Value as Any},
    profiles::v1development as p,
    resource::v1::Resource,
};
use proto::{
    Function, Line, Location, Message as _, Profile, Sample, ValueType,
    pyroscope::{LabelPair, PushRequest, RawProfileSeries, RawSample},
};
use serde_json::{Value, json};

use crate::{
    harness::{Cinder, Http, Resp, corpus, enc},
    ingest::{ALL_TIME, assert_top_matches, cpu_profile, top},
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// 64 MiB of zeros, gzipped (about 64 KiB): inflates past every limit.
fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..80 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

fn total(http: &Http, server: &Cinder, query: &str) -> i64 {
    top(http, server, query, ALL_TIME)["total"]
        .as_i64()
        .unwrap()
}

/// `function → flat` of the top table, for functions with a flat value.
pub(crate) fn flats(http: &Http, server: &Cinder, query: &str) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = top(http, server, query, ALL_TIME)["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["flat"].as_i64().unwrap(),
            )
        })
        .filter(|(_, flat)| *flat != 0)
        .collect();
    rows.sort();
    rows
}

fn values(http: &Http, server: &Cinder, label: &str) -> Value {
    http.get(
        &format!("{}/api/v1/labels/{label}/values?{ALL_TIME}", server.url()),
        false,
    )
    .json()
}

fn post(http: &Http, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let mut req = http.raw().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http.send_with(req)
}

fn text(resp: &Resp) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// A Go-like heap profile (`alloc_objects`, `alloc_space`, `inuse_objects`,
/// `inuse_space`); stacks leaf first, values (alloc, inuse) per stack.
fn heap_profile(time_ms: i64, stacks: &[(&[&str], i64, i64)]) -> Vec<u8> {
    let mut strings: Vec<String> = [
        "",
        "alloc_objects",
        "count",
        "alloc_space",
        "bytes",
        "inuse_objects",
        "inuse_space",
        "space",
    ]
    .map(String::from)
    .to_vec();
    let mut function: Vec<Function> = Vec::new();
    let mut sample = Vec::new();
    for (frames, alloc, inuse) in stacks {
        let mut location_id = Vec::new();
        for name in *frames {
            let id = match strings.iter().position(|s| s == name) {
                Some(i) => function.iter().find(|f| f.name == i as i64).unwrap().id,
                None => {
                    strings.push(name.to_string());
                    function.push(Function {
                        id: function.len() as u64 + 1,
                        name: strings.len() as i64 - 1,
                        ..Default::default()
                    });
                    function.len() as u64
                }
            };
            location_id.push(id);
        }
        sample.push(Sample {
            location_id,
            value: vec![*alloc, alloc * 64, *inuse, inuse * 64],
            ..Default::default()
        });
    }
    let location = function
        .iter()
        .map(|f| Location {
            id: f.id,
            line: vec![Line {
                function_id: f.id,
                line: 1,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let profile = Profile {
        sample_type: (0..4)
            .map(|i| ValueType {
                ty: [1, 3, 5, 6][i],
                unit: [2, 4, 2, 4][i],
            })
            .collect(),
        sample,
        location,
        function,
        string_table: strings.into_iter().map(String::into_bytes).collect(),
        time_nanos: time_ms * 1_000_000,
        period_type: Some(ValueType { ty: 7, unit: 4 }),
        period: 524_288,
        ..Default::default()
    };
    gzip(&profile.encode_to_vec())
}

fn push_request(labels: &[(&str, &str)], profiles: Vec<Vec<u8>>) -> PushRequest {
    PushRequest {
        series: vec![RawProfileSeries {
            labels: labels
                .iter()
                .map(|(name, value)| LabelPair {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            samples: profiles
                .into_iter()
                .enumerate()
                .map(|(i, raw_profile)| RawSample {
                    raw_profile,
                    id: format!("id-{i}"),
                })
                .collect(),
            annotations: vec![],
        }],
    }
}

const CPU: &str = "process_cpu:samples:count:cpu:nanoseconds:delta";
const CPU_NS: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta";

#[test]
fn pyroscope_connect_push_protobuf_json_gzip_and_server_side_deltas() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let url = format!("{}/push.v1.PusherService/Push", server.url());
    let sdk_labels = [
        ("__name__", "process_cpu"),
        ("service_name", "shop"),
        ("__delta__", "false"),
        ("service.version", "1.2.3"),
    ];
    // What the Go SDK sends: application/proto, gzip request compression, gzipped pprof.
    let request = push_request(
        &sdk_labels,
        vec![cpu_profile(
            1_700_000_000_000,
            &[(&["work", "main"], 5), (&["main"], 2)],
        )],
    );
    let resp = post(
        &http,
        &url,
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
        ],
        gzip(&request.encode_to_vec()),
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(resp.headers["content-type"], "application/proto");
    assert!(resp.body.is_empty(), "an empty PushResponse");
    let shop = format!(r#"{CPU}{{service_name="shop",service_version="1.2.3"}}"#);
    assert_eq!(total(&http, &server, &shop), 7);
    assert_eq!(
        flats(&http, &server, &shop),
        [("main".to_owned(), 2), ("work".to_owned(), 5)]
    );

    // The JSON codec: protobuf JSON with base64 bytes; answered {}.
    let b64 = |bytes: Vec<u8>| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let json_request = json!({"series": [{
        "labels": [{"name": "__name__", "value": "process_cpu"}, {"name": "service_name", "value": "shop"},
                   {"name": "__delta__", "value": "false"}, {"name": "service.version", "value": "1.2.3"}],
        "samples": [{"rawProfile": b64(cpu_profile(1_700_000_010_000, &[(&["work", "main"], 3)])), "ID": "x"}]
    }]});
    let resp = post(
        &http,
        &url,
        &[("content-type", "application/json")],
        json_request.to_string().into_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(resp.json(), json!({}));
    assert_eq!(total(&http, &server, &shop), 10);

    // Without __delta__="false", cumulative Go counters are differenced per series: the
    // first push is the baseline, the second stores the growth.
    let heap_labels = [("__name__", "memory"), ("service_name", "cache")];
    for (t, alloc) in [(1_700_000_000_000, 10), (1_700_000_015_000, 14)] {
        let request = push_request(
            &heap_labels,
            vec![heap_profile(t, &[(&["grow", "main"], alloc, 3)])],
        );
        let resp = post(
            &http,
            &url,
            &[("content-type", "application/proto")],
            request.encode_to_vec(),
        );
        assert_eq!(resp.status, 200, "{}", text(&resp));
    }
    let allocs = r#"memory:alloc_objects:count:space:bytes:delta{service_name="cache"}"#;
    assert_eq!(total(&http, &server, allocs), 4);
    assert_eq!(flats(&http, &server, allocs), [("grow".to_owned(), 4)]);

    // Bad inputs: Connect errors, nothing stored.
    let valid = push_request(
        &[("__name__", "process_cpu"), ("service_name", "bad")],
        vec![cpu_profile(1_700_000_000_000, &[(&["x"], 1)])],
    )
    .encode_to_vec();
    let mut non_utf8 = push_request(
        &[("__name__", "process_cpu"), ("service_name", "b\u{1}d")],
        vec![],
    )
    .encode_to_vec();
    let at = non_utf8.iter().position(|b| *b == 1).unwrap();
    non_utf8[at] = 0xff;
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<u8>, u16, &str, &str)> = vec![
        (
            "truncated",
            vec![("content-type", "application/proto")],
            valid[..valid.len() - 7].to_vec(),
            400,
            "invalid_argument",
            "invalid PushRequest protobuf",
        ),
        (
            "non-UTF-8",
            vec![("content-type", "application/proto")],
            non_utf8,
            400,
            "invalid_argument",
            "UTF-8",
        ),
        (
            "gzip bomb",
            vec![
                ("content-type", "application/proto"),
                ("content-encoding", "gzip"),
            ],
            gzip_bomb(),
            429,
            "resource_exhausted",
            "inflates to more than",
        ),
        (
            "bad JSON",
            vec![("content-type", "application/json")],
            b"{\"series\": 3}".to_vec(),
            400,
            "invalid_argument",
            "invalid PushRequest JSON",
        ),
        (
            "bad pprof",
            vec![("content-type", "application/proto")],
            push_request(
                &[("__name__", "process_cpu"), ("service_name", "bad")],
                vec![b"nope".to_vec()],
            )
            .encode_to_vec(),
            400,
            "invalid_argument",
            "series[0].samples[0]",
        ),
        (
            "no name",
            vec![("content-type", "application/proto")],
            push_request(
                &[("service_name", "bad")],
                vec![cpu_profile(1, &[(&["x"], 1)])],
            )
            .encode_to_vec(),
            400,
            "invalid_argument",
            "__name__",
        ),
        (
            "content type",
            vec![("content-type", "text/plain")],
            valid.clone(),
            415,
            "unimplemented",
            "text/plain",
        ),
    ];
    for (what, headers, body, status, code, message) in cases {
        let resp = post(&http, &url, &headers, body);
        assert_eq!(resp.status, status, "{what}: {}", text(&resp));
        let err = resp.json();
        assert_eq!(err["code"], code, "{what}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(message),
            "{what}: {err}"
        );
    }
    assert_eq!(
        values(&http, &server, "service_name"),
        json!(["cache", "shop"])
    );
}

/// The shared real profiles through the Connect push, as an SDK sends them (gzipped
/// request, `__delta__="false"`): each stores its expected totals and top functions, and
/// the invalid ones are refused and store nothing.
#[test]
fn real_profiles_through_the_connect_push_keep_their_totals() {
    let Some(dir) = corpus() else {
        return;
    };
    let expected: std::collections::BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let server = Cinder::start(&[]);
    let http = Http::new();
    let url = format!("{}/push.v1.PusherService/Push", server.url());
    let mut checked = 0;
    for (file, facts) in &expected {
        let label = file.replace(['.', '-'], "_");
        let request = push_request(
            &[
                ("__name__", "real"),
                ("service_name", "sdk"),
                ("__delta__", "false"),
                ("file", &label),
            ],
            vec![std::fs::read(dir.join(file)).unwrap()],
        );
        let headers = [
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
        ];
        let resp = post(&http, &url, &headers, gzip(&request.encode_to_vec()));
        if facts["valid"] == false {
            assert_eq!(resp.status, 400, "{file} is invalid: {}", text(&resp));
            assert_eq!(resp.json()["code"], "invalid_argument", "{file}");
            let files = values(&http, &server, "file");
            assert!(
                !files.as_array().unwrap().contains(&json!(label)),
                "{file} left data behind"
            );
            continue;
        }
        assert_eq!(resp.status, 200, "{file}: {}", text(&resp));
        let types = http
            .get(
                &format!("{}/api/v1/profile-types?{ALL_TIME}", server.url()),
                false,
            )
            .json();
        for want in facts["total_per_sample_type"].as_array().unwrap() {
            let key = (
                want["type"].as_str().unwrap(),
                want["unit"].as_str().unwrap(),
            );
            let total = want["total"].as_i64().unwrap();
            let mut stored = 0;
            for t in types.as_array().unwrap() {
                if t["name"] != "real"
                    || (
                        t["sample_type"].as_str().unwrap(),
                        t["sample_unit"].as_str().unwrap(),
                    ) != key
                {
                    continue;
                }
                let query = format!(r#"{}{{file="{label}"}}"#, t["id"].as_str().unwrap());
                let answer = top(&http, &server, &query, ALL_TIME);
                let value = answer["total"].as_i64().unwrap();
                let name = format!("{}/{}", key.0, key.1);
                if value != 0
                    && let Some(top_functions) =
                        facts.get("top_functions").and_then(|t| t.get(&name))
                {
                    assert_top_matches(file, &name, &answer, top_functions);
                }
                stored += value;
            }
            assert_eq!(stored, total, "{file} {key:?}: total read back");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} sample types checked");
}

#[test]
fn pyroscope_ingest_folded_lines_and_speedscope() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let ingest = |name: &str, query: &str, body: &[u8]| {
        let url = format!(
            "{}/ingest?name={}&from=1700000000&until=1700000010&{query}",
            server.url(),
            enc(name)
        );
        http.post(&url, body.to_vec())
    };
    // perf/py-spy style folded text at 100 Hz: 10 ms of CPU a sample.
    let resp = ingest(
        "api.cpu{env=prod}",
        "format=folded&sampleRate=100&spyName=pyspy",
        b"main;handle;parse 30\nmain;handle 10\nmain;handle;parse 5\n",
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    let api = r#"{service_name="api",env="prod",pyroscope_spy="pyspy"}"#;
    assert_eq!(total(&http, &server, &format!("{CPU}{api}")), 45);
    assert_eq!(
        total(&http, &server, &format!("{CPU_NS}{api}")),
        450_000_000
    );
    assert_eq!(
        flats(&http, &server, &format!("{CPU_NS}{api}")),
        [
            ("handle".to_owned(), 100_000_000),
            ("parse".to_owned(), 350_000_000)
        ]
    );
    // groups is folded; lines count 1 each; sampleRate changes the period.
    let resp = ingest("lines.cpu", "format=lines&sampleRate=50", b"a;b\na;b\na\n");
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(
        total(
            &http,
            &server,
            &format!(r#"{CPU_NS}{{service_name="lines"}}"#)
        ),
        60_000_000
    );
    let resp = ingest(
        "groups.alloc_space",
        "format=groups&units=bytes",
        b"a;b 100\n",
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(
        total(
            &http,
            &server,
            r#"memory:alloc_space:bytes:space:bytes:delta{service_name="groups"}"#
        ),
        100
    );

    // speedscope: a sampled and an evented profile, merged, each with its profile_name.
    let file = json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": "main"}, {"name": "work", "file": "w.py", "line": 4}]},
        "profiles": [
            {"type": "sampled", "name": "MainThread", "unit": "seconds", "startValue": 0, "endValue": 1,
             "samples": [[0, 1], [0]], "weights": [0.25, 0.5]},
            {"type": "evented", "name": "Worker", "unit": "milliseconds", "startValue": 0, "endValue": 30,
             "events": [{"type": "O", "frame": 0, "at": 0}, {"type": "O", "frame": 1, "at": 10},
                        {"type": "C", "frame": 1, "at": 30}, {"type": "C", "frame": 0, "at": 30}]}
        ]
    });
    let resp = ingest("py.cpu", "format=speedscope", file.to_string().as_bytes());
    assert_eq!(resp.status, 200, "{}", text(&resp));
    let py = format!(r#"{CPU_NS}{{service_name="py"}}"#);
    assert_eq!(total(&http, &server, &py), 780_000_000);
    assert_eq!(
        flats(&http, &server, &py),
        [
            ("main".to_owned(), 510_000_000),
            ("work".to_owned(), 270_000_000)
        ]
    );
    assert_eq!(
        values(&http, &server, "profile_name"),
        json!(["MainThread", "Worker"])
    );

    // Precise 400s, nothing stored.
    for (query, body, field, detail) in [
        ("format=jfr", &b"x"[..], Some("format"), "jfr"),
        ("format=pcap", b"x", Some("format"), "pcap"),
        (
            "format=folded&sampleRate=0",
            b"a 1",
            Some("sampleRate"),
            "sampleRate",
        ),
        (
            "format=folded&aggregationType=max",
            b"a 1",
            Some("aggregationType"),
            "max",
        ),
        ("format=folded", b"a;b 1\nno-count\n", None, "line 2"),
        ("format=folded", b"a;\xff 1", None, "UTF-8"),
        (
            "format=speedscope",
            b"{\"$schema\": \"x\"}",
            None,
            "$schema",
        ),
    ] {
        let resp = ingest("broken.cpu", query, body);
        assert_eq!(resp.status, 400, "{query}: {}", text(&resp));
        let err = resp.json();
        assert_eq!(err["field"].as_str(), field, "{query}: {err}");
        assert!(
            err["detail"].as_str().unwrap().contains(detail),
            "{query}: {err}"
        );
    }
    let resp = ingest("bomb.cpu", "format=folded", &gzip_bomb());
    assert_eq!(resp.status, 413, "{}", text(&resp));
    let services = values(&http, &server, "service_name");
    assert!(
        !services.as_array().unwrap().contains(&json!("broken")),
        "{services}"
    );
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// What the OpenTelemetry eBPF profiler sends through the collector: one CPU profile
/// (`samples`/`count` every `cpu`/`nanoseconds`), timestamps-only samples, an
/// unsymbolized native frame with its mapping and build id, a `thread.name` attribute.
fn ebpf_request(service: &str) -> ExportProfilesServiceRequest {
    let strings = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main",
        "main.go",
        "work",
        "/usr/bin/app",
        "process.executable.build_id.gnu",
        "thread.name",
    ];
    let s = |name: &str| strings.iter().position(|x| *x == name).unwrap() as i32;
    let string_attr = |key: &str, value: &str| p::KeyValueAndUnit {
        key_strindex: s(key),
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        unit_strindex: 0,
    };
    let dictionary = p::ProfilesDictionary {
        string_table: strings.iter().map(|x| x.to_string()).collect(),
        mapping_table: vec![
            p::Mapping::default(),
            p::Mapping {
                memory_start: 0x1000,
                memory_limit: 0x9000,
                filename_strindex: s("/usr/bin/app"),
                attribute_indices: vec![1],
                ..Default::default()
            },
        ],
        function_table: vec![
            p::Function::default(),
            p::Function {
                name_strindex: s("main"),
                filename_strindex: s("main.go"),
                ..Default::default()
            },
            p::Function {
                name_strindex: s("work"),
                filename_strindex: s("main.go"),
                ..Default::default()
            },
        ],
        location_table: vec![
            p::Location::default(),
            p::Location {
                lines: vec![p::Line {
                    function_index: 1,
                    line: 3,
                    column: 0,
                }],
                ..Default::default()
            },
            p::Location {
                lines: vec![p::Line {
                    function_index: 2,
                    line: 9,
                    column: 0,
                }],
                ..Default::default()
            },
            p::Location {
                mapping_index: 1,
                address: 0x1234,
                ..Default::default()
            },
        ],
        stack_table: vec![
            p::Stack::default(),
            p::Stack {
                location_indices: vec![2, 1],
            },
            p::Stack {
                location_indices: vec![3, 1],
            },
        ],
        attribute_table: vec![
            p::KeyValueAndUnit::default(),
            string_attr("process.executable.build_id.gnu", "abc123"),
            string_attr("thread.name", "worker-1"),
        ],
        link_table: vec![
            p::Link::default(),
            p::Link {
                trace_id: vec![7; 16],
                span_id: vec![9; 8],
            },
        ],
    };
    let profile = p::Profile {
        sample_type: Some(p::ValueType {
            type_strindex: s("samples"),
            unit_strindex: s("count"),
        }),
        period_type: Some(p::ValueType {
            type_strindex: s("cpu"),
            unit_strindex: s("nanoseconds"),
        }),
        period: 50_000_000,
        time_unix_nano: 1_700_000_000_000_000_000,
        duration_nano: 5_000_000_000,
        profile_id: vec![1; 16],
        samples: vec![
            p::Sample {
                stack_index: 1,
                timestamps_unix_nano: vec![1, 2, 3],
                attribute_indices: vec![2],
                link_index: 1,
                ..Default::default()
            },
            p::Sample {
                stack_index: 2,
                values: vec![2, 5],
                timestamps_unix_nano: vec![4, 5],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    ExportProfilesServiceRequest {
        resource_profiles: vec![p::ResourceProfiles {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("host.name", "node-1"),
                    kv("k8s.namespace.name", "shop"),
                ],
                ..Default::default()
            }),
            scope_profiles: vec![p::ScopeProfiles {
                profiles: vec![profile],
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: Some(dictionary),
    }
}

/// The service's CPU totals and functions: 3 samples in work (timestamps only), 7 in
/// the unsymbolized frame (values 2 + 5).
fn assert_ebpf_stored(http: &Http, server: &Cinder, service: &str, times: i64) {
    let q = format!(
        r#"{CPU}{{service_name="{service}",host_name="node-1",k8s_namespace_name="shop"}}"#
    );
    assert_eq!(total(http, server, &q), 10 * times, "{q}");
    assert_eq!(
        flats(http, server, &q),
        [
            ("0x1234".to_owned(), 7 * times),
            ("work".to_owned(), 3 * times)
        ]
    );
}

/// The OTLP request as protobuf JSON from the official descriptors (prost-reflect's
/// canonical encoder), then with OTLP's hex trace/span ids.
fn canonical_json(request: &ExportProfilesServiceRequest) -> Value {
    let pool = prost_reflect::DescriptorPool::decode(opentelemetry_proto::DESCRIPTORS).unwrap();
    let descriptor = pool
        .get_message_by_name(
            "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceRequest",
        )
        .unwrap();
    let mut message = prost_reflect::DynamicMessage::new(descriptor);
    message.transcode_from(request).unwrap();
    let mut json = serde_json::to_value(&message).unwrap();
    let link = &mut json["dictionary"]["linkTable"][1];
    link["traceId"] = json!("07".repeat(16));
    link["spanId"] = json!("09".repeat(8));
    json
}

#[test]
fn otlp_http_protobuf_and_json() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let url = format!("{}/v1development/profiles", server.url());
    let protobuf = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    let resp = post(
        &http,
        &url,
        &protobuf,
        gzip(&ebpf_request("checkout").encode_to_vec()),
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(resp.headers["content-type"], "application/x-protobuf");
    let answer = ExportProfilesServiceResponse::decode(resp.body.as_slice()).unwrap();
    assert_eq!(answer.partial_success, None);
    assert_ebpf_stored(&http, &server, "checkout", 1);

    // JSON from a canonical encoder over the official descriptors.
    let json_headers = [("content-type", "application/json")];
    let canonical = canonical_json(&ebpf_request("cart"));
    assert_eq!(
        canonical["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]["timeUnixNano"],
        "1700000000000000000"
    );
    let resp = post(
        &http,
        &url,
        &json_headers,
        canonical.to_string().into_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_eq!(resp.headers["content-type"], "application/json");
    assert_eq!(resp.json(), json!({}));
    assert_ebpf_stored(&http, &server, "cart", 1);

    // JSON written by hand: proto names beside camelCase, int64 as numbers and strings,
    // unknown fields, hex ids, gzip.
    let by_hand = json!({
        "resource_profiles": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hand"}},
                                        {"key": "host.name", "value": {"stringValue": "node-1"}},
                                        {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}}]},
            "scopeProfiles": [{"scope": {"name": "ebpf"}, "profiles": [{
                "sampleType": {"typeStrindex": 1, "unit_strindex": 2},
                "periodType": {"typeStrindex": 3, "unitStrindex": 4},
                "period": "50000000", "time_unix_nano": 1700000000000000000u64, "durationNano": "5000000000",
                "profileId": "AQEBAQEBAQEBAQEBAQEBAQ==", "someFutureField": {"x": 1},
                "samples": [
                    {"stackIndex": 1, "timestampsUnixNano": ["1", 2, "3"], "attributeIndices": [2], "linkIndex": 1},
                    {"stack_index": 2, "values": ["2", 5], "timestamps_unix_nano": [4, 5]}
                ]}]}]
        }],
        "dictionary": {
            "stringTable": ["", "samples", "count", "cpu", "nanoseconds", "main", "main.go", "work", "/usr/bin/app", "process.executable.build_id.gnu", "thread.name"],
            "mappingTable": [{}, {"memoryStart": "4096", "memoryLimit": 36864, "filenameStrindex": 8, "attributeIndices": [1]}],
            "functionTable": [{}, {"nameStrindex": 5, "filenameStrindex": 6}, {"name_strindex": 7, "filename_strindex": 6}],
            "locationTable": [{}, {"lines": [{"functionIndex": 1, "line": "3"}]}, {"lines": [{"functionIndex": 2, "line": 9}]},
                              {"mappingIndex": 1, "address": "4660"}],
            "stackTable": [{}, {"locationIndices": [2, 1]}, {"location_indices": [3, 1]}],
            "attributeTable": [{}, {"keyStrindex": 9, "value": {"stringValue": "abc123"}},
                               {"keyStrindex": 10, "value": {"stringValue": "worker-1"}}],
            "linkTable": [{}, {"traceId": "07070707070707070707070707070707", "spanId": "0909090909090909"}]
        }
    });
    let resp = post(
        &http,
        &url,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(by_hand.to_string().as_bytes()),
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));
    assert_ebpf_stored(&http, &server, "hand", 1);
    let build_ids = http
        .get(
            &format!(
                "{}/api/v1/query?report=stacks&format=json&query={}&{ALL_TIME}",
                server.url(),
                enc(&format!(r#"{CPU}{{service_name="hand"}}"#))
            ),
            false,
        )
        .json();
    let frames = build_ids["frames"].as_array().unwrap();
    let native = frames.iter().find(|f| f["address"] == 4660).unwrap();
    assert_eq!(
        (&native["binary"], &native["build_id"], &native["function"]),
        (&json!("app"), &json!("abc123"), &json!("")),
        "{frames:?}"
    );

    // A partly bad request stores the good profile and reports the other.
    let mut partial = ebpf_request("partial");
    let profiles = &mut partial.resource_profiles[0].scope_profiles[0].profiles;
    let mut bad = profiles[0].clone();
    bad.samples[0].stack_index = 42;
    profiles.push(bad);
    let resp = post(&http, &url, &protobuf, gzip(&partial.encode_to_vec()));
    assert_eq!(resp.status, 200, "{}", text(&resp));
    let answer = ExportProfilesServiceResponse::decode(resp.body.as_slice()).unwrap();
    let partial_success = answer.partial_success.unwrap();
    assert_eq!(partial_success.rejected_profiles, 1);
    assert!(
        partial_success
            .error_message
            .contains("profiles[1]: samples[0]: stack_index 42 is out of range"),
        "{}",
        partial_success.error_message
    );
    assert_ebpf_stored(&http, &server, "partial", 1);

    // Bad requests: 400 with an OTLP Status in the request's content type, nothing stored.
    for (what, headers, body, status, message) in otlp_bad_inputs() {
        let resp = post(&http, &url, &headers, body);
        assert_eq!(resp.status, status, "{what}: {}", text(&resp));
        let message_text = if headers[0].1 == "application/json" {
            let status = resp.json();
            assert!(status["code"].as_i64().is_some(), "{what}: {status}");
            status["message"].as_str().unwrap().to_owned()
        } else {
            // google.rpc.Status: code = 1, message = 2.
            decode_status(&resp.body).1
        };
        assert!(message_text.contains(message), "{what}: {message_text}");
    }
    assert_eq!(
        values(&http, &server, "service_name"),
        json!(["cart", "checkout", "hand", "partial"])
    );
}

/// (what, headers, body, HTTP status, part of the message) of malformed OTLP requests.
fn otlp_bad_inputs() -> Vec<(
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
)> {
    let protobuf = vec![("content-type", "application/x-protobuf")];
    let json_type = vec![("content-type", "application/json")];
    let mut out_of_range = ebpf_request("bad");
    out_of_range.dictionary.as_mut().unwrap().stack_table[2].location_indices = vec![99];
    let mut mismatched = ebpf_request("bad");
    mismatched.resource_profiles[0].scope_profiles[0].profiles[0].samples[1].values = vec![1, 2, 3];
    let valid = ebpf_request("bad").encode_to_vec();
    let mut non_utf8 = ebpf_request("bad");
    non_utf8.dictionary.as_mut().unwrap().string_table[7] = "w\u{1}rk".into();
    let mut non_utf8 = non_utf8.encode_to_vec();
    let at = non_utf8.windows(3).position(|w| w == b"w\x01r").unwrap() + 1;
    non_utf8[at] = 0xff;
    vec![
        (
            "index out of range",
            protobuf.clone(),
            out_of_range.encode_to_vec(),
            400,
            "stack location 99 is out of range (dictionary.location_table has 4 entries)",
        ),
        (
            "values/timestamps",
            protobuf.clone(),
            mismatched.encode_to_vec(),
            400,
            "3 values but 2 timestamps",
        ),
        (
            "truncated",
            protobuf.clone(),
            valid[..valid.len() - 9].to_vec(),
            400,
            "invalid ExportProfilesServiceRequest protobuf",
        ),
        ("non-UTF-8", protobuf.clone(), non_utf8, 400, "UTF-8"),
        (
            "gzip bomb",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            gzip_bomb(),
            413,
            "inflates to more than",
        ),
        (
            "bad JSON",
            json_type.clone(),
            b"{\"resourceProfiles\": 7}".to_vec(),
            400,
            "invalid OTLP JSON",
        ),
        (
            "JSON index out of range",
            json_type,
            serde_json::to_vec(&canonical_json(&out_of_range)).unwrap(),
            400,
            "out of range",
        ),
    ]
}

/// (code, message) of a protobuf `google.rpc.Status`.
fn decode_status(body: &[u8]) -> (i32, String) {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let status = Status::decode(body).unwrap();
    (status.code, status.message)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pprof profile as an OTLP request: one OTLP `Profile` per sample type, sharing one
/// dictionary built from the pprof tables (string labels become sample attributes).
fn pprof_to_otlp(pprof: &Profile, file_label: &str) -> ExportProfilesServiceRequest {
    let strings: Vec<String> = pprof
        .string_table
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // pprof id → OTLP table index (index 0 is the empty entry).
    let table = |ids: Vec<u64>| -> std::collections::HashMap<u64, i32> {
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as i32 + 1))
            .collect()
    };
    let functions = table(pprof.function.iter().map(|f| f.id).collect());
    let mappings = table(pprof.mapping.iter().map(|m| m.id).collect());
    let locations = table(pprof.location.iter().map(|l| l.id).collect());
    let pos =
        |map: &std::collections::HashMap<u64, i32>, id: u64| map.get(&id).copied().unwrap_or(0);
    let mut dictionary = p::ProfilesDictionary {
        mapping_table: std::iter::once(p::Mapping::default())
            .chain(pprof.mapping.iter().map(|m| p::Mapping {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename_strindex: m.filename as i32,
                attribute_indices: vec![],
            }))
            .collect(),
        function_table: std::iter::once(p::Function::default())
            .chain(pprof.function.iter().map(|f| p::Function {
                name_strindex: f.name as i32,
                system_name_strindex: f.system_name as i32,
                filename_strindex: f.filename as i32,
                start_line: f.start_line,
            }))
            .collect(),
        location_table: std::iter::once(p::Location::default())
            .chain(pprof.location.iter().map(|l| {
                p::Location {
                    mapping_index: pos(&mappings, l.mapping_id),
                    address: l.address,
                    lines: l
                        .line
                        .iter()
                        .map(|line| p::Line {
                            function_index: pos(&functions, line.function_id),
                            line: line.line,
                            column: line.column,
                        })
                        .collect(),
                    attribute_indices: vec![],
                }
            }))
            .collect(),
        stack_table: vec![p::Stack::default()],
        attribute_table: vec![p::KeyValueAndUnit::default()],
        link_table: vec![p::Link::default()],
        string_table: vec![],
    };
    let mut samples = Vec::new();
    for sample in &pprof.sample {
        dictionary.stack_table.push(p::Stack {
            location_indices: sample
                .location_id
                .iter()
                .map(|id| pos(&locations, *id))
                .collect(),
        });
        let mut attribute_indices = Vec::new();
        for label in sample.label.iter().filter(|l| l.str != 0) {
            dictionary.attribute_table.push(p::KeyValueAndUnit {
                key_strindex: label.key as i32,
                value: Some(AnyValue {
                    value: Some(Any::StringValue(strings[label.str as usize].clone())),
                }),
                unit_strindex: 0,
            });
            attribute_indices.push(dictionary.attribute_table.len() as i32 - 1);
        }
        samples.push((
            dictionary.stack_table.len() as i32 - 1,
            attribute_indices,
            &sample.value,
        ));
    }
    let period_type = pprof.period_type.map(|pt| p::ValueType {
        type_strindex: pt.ty as i32,
        unit_strindex: pt.unit as i32,
    });
    let profiles = pprof
        .sample_type
        .iter()
        .enumerate()
        .map(|(i, st)| p::Profile {
            sample_type: Some(p::ValueType {
                type_strindex: st.ty as i32,
                unit_strindex: st.unit as i32,
            }),
            period_type,
            period: pprof.period,
            time_unix_nano: pprof.time_nanos.max(0) as u64,
            duration_nano: pprof.duration_nanos.max(0) as u64,
            samples: samples
                .iter()
                .map(|(stack, attributes, values)| p::Sample {
                    stack_index: *stack,
                    attribute_indices: attributes.clone(),
                    values: vec![values[i]],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    dictionary.string_table = strings;
    ExportProfilesServiceRequest {
        resource_profiles: vec![p::ResourceProfiles {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "otlp-real"), kv("file", file_label)],
                ..Default::default()
            }),
            scope_profiles: vec![p::ScopeProfiles {
                profiles,
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: Some(dictionary),
    }
}

/// The shared real profiles, converted to OTLP and sent over OTLP/HTTP: each sample
/// type's total and top functions read back as `go tool pprof` gives them.
#[test]
fn real_profiles_through_otlp_keep_their_totals() {
    let Some(dir) = corpus() else {
        return;
    };
    let expected: std::collections::BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let server = Cinder::start(&[]);
    let http = Http::new();
    let url = format!("{}/v1development/profiles", server.url());
    let mut checked = 0;
    for (file, facts) in expected.iter().filter(|(_, f)| f["valid"] != false) {
        let pprof = proto::read(&std::fs::read(dir.join(file)).unwrap(), 64 << 20).unwrap();
        let label = file.replace(['.', '-'], "_");
        let request = pprof_to_otlp(&pprof, &label);
        let resp = post(
            &http,
            &url,
            &[("content-type", "application/x-protobuf")],
            request.encode_to_vec(),
        );
        assert_eq!(resp.status, 200, "{file}: {}", text(&resp));
        let answer = ExportProfilesServiceResponse::decode(resp.body.as_slice()).unwrap();
        assert_eq!(answer.partial_success, None, "{file}");
        let types = http
            .get(
                &format!("{}/api/v1/profile-types?{ALL_TIME}", server.url()),
                false,
            )
            .json();
        for want in facts["total_per_sample_type"].as_array().unwrap() {
            let key = (
                want["type"].as_str().unwrap(),
                want["unit"].as_str().unwrap(),
            );
            let name = format!("{}/{}", key.0, key.1);
            let mut stored = 0;
            for t in types.as_array().unwrap() {
                if (
                    t["sample_type"].as_str().unwrap(),
                    t["sample_unit"].as_str().unwrap(),
                ) != key
                {
                    continue;
                }
                let query = format!(r#"{}{{file="{label}"}}"#, t["id"].as_str().unwrap());
                let answer = top(&http, &server, &query, ALL_TIME);
                let value = answer["total"].as_i64().unwrap();
                if value != 0
                    && let Some(top_functions) =
                        facts.get("top_functions").and_then(|t| t.get(&name))
                {
                    assert_top_matches(file, &name, &answer, top_functions);
                }
                stored += value;
            }
            assert_eq!(
                stored,
                want["total"].as_i64().unwrap(),
                "{file} {name}: total read back"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} sample types checked");
}

#[test]
fn otlp_grpc_on_the_http_port_and_its_own() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Cinder::start(&["--otlp-grpc-listen", &listen]);
    let http = Http::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let export = |url: String, request: ExportProfilesServiceRequest| {
        rt.block_on(async move {
            let mut client = ProfilesServiceClient::connect(url)
                .await
                .expect("gRPC connect")
                .send_compressed(tonic::codec::CompressionEncoding::Gzip);
            client.export(request).await
        })
    };
    // The collector's otlp exporter pointed at the HTTP port (h2c) and at the gRPC port.
    let answer = export(server.url(), ebpf_request("h2c")).expect("export on the HTTP port");
    assert_eq!(answer.get_ref().partial_success, None);
    assert_ebpf_stored(&http, &server, "h2c", 1);
    let answer = export(format!("http://{listen}"), ebpf_request("grpc")).expect("export");
    assert_eq!(answer.get_ref().partial_success, None);
    assert_ebpf_stored(&http, &server, "grpc", 1);

    // Malformed: InvalidArgument, nothing stored.
    let mut out_of_range = ebpf_request("bad");
    out_of_range.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 5;
    let err = export(server.url(), out_of_range).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("stack_index 5 is out of range"),
        "{err}"
    );
    let mut mismatched = ebpf_request("bad");
    mismatched.resource_profiles[0].scope_profiles[0].profiles[0].samples[1].timestamps_unix_nano =
        vec![1];
    let err = export(format!("http://{listen}"), mismatched).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    // A message inflating past the limit.
    let mut huge = ebpf_request("bad");
    huge.dictionary
        .as_mut()
        .unwrap()
        .string_table
        .push("x".repeat(20 << 20));
    let err = export(server.url(), huge).unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert_eq!(
        values(&http, &server, "service_name"),
        json!(["grpc", "h2c"])
    );
}

/// Runs cinder on a fresh data dir until it exits or logs a line containing `until`;
/// returns whether it exited (with its code) and its stderr so far.
fn run_until(args: &[&str], until: &str) -> (Option<i32>, String) {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::harness::cinder_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            tmp.path().to_str().unwrap(),
        ])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains(until) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, stderr);
        }
    }
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn an_explicit_otlp_grpc_address_that_cannot_be_bound_stops_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_until(&["--otlp-grpc-listen", &addr], "cinder is ready");
    assert!(matches!(code, Some(c) if c != 0), "{code:?}: {stderr}");
    let last = stderr.trim().lines().last().unwrap_or("");
    assert!(
        last.contains(&format!("cannot listen on --otlp-grpc-listen {addr}")),
        "{stderr}"
    );
    // `off` starts without the listener.
    let (code, stderr) = run_until(&["--otlp-grpc-listen", "off"], "cinder is ready");
    assert_eq!(code, None, "{stderr}");
    assert!(!stderr.contains("otlp_grpc_listen="), "{stderr}");
}

#[test]
fn the_default_otlp_grpc_port_taken_is_a_warning() {
    // Held here, or by another test's cinder: either way 4317 is taken (when another
    // process held it and lets go meanwhile, cinder binds it and says so).
    let held = std::net::TcpListener::bind("127.0.0.1:4317");
    let (code, stderr) = run_until(&[], "cinder is ready");
    assert_eq!(code, None, "cinder stopped: {stderr}");
    assert!(
        stderr.contains("the default OTLP gRPC port is not available")
            || (held.is_err() && stderr.contains("otlp_grpc_listen=127.0.0.1:4317")),
        "{stderr}"
    );
}

#[test]
fn the_api_token_guards_every_new_push_path() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Cinder::start(&["--api-token", "s3cret", "--otlp-grpc-listen", &listen]);
    let http = Http::new();
    let connect = format!("{}/push.v1.PusherService/Push", server.url());
    let push = push_request(
        &[("__name__", "process_cpu"), ("service_name", "tok")],
        vec![cpu_profile(1_700_000_000_000, &[(&["a"], 1)])],
    )
    .encode_to_vec();
    let proto_type = ("content-type", "application/proto");
    let resp = post(&http, &connect, &[proto_type], push.clone());
    assert_eq!(resp.status, 401, "{}", text(&resp));
    assert_eq!(resp.json()["code"], "unauthenticated");
    let resp = post(
        &http,
        &connect,
        &[proto_type, ("authorization", "Bearer s3cret")],
        push,
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));

    let otlp = format!("{}/v1development/profiles", server.url());
    let json_type = ("content-type", "application/json");
    let body = canonical_json(&ebpf_request("tok-otlp"))
        .to_string()
        .into_bytes();
    let resp = post(&http, &otlp, &[json_type], body.clone());
    assert_eq!(resp.status, 401, "{}", text(&resp));
    assert_eq!(resp.json()["code"], 16, "UNAUTHENTICATED");
    // The token is checked before the content type: no token and no type is 401, not 415.
    let resp = post(&http, &otlp, &[], b"x".to_vec());
    assert_eq!(resp.status, 401, "{}", text(&resp));
    let resp = post(
        &http,
        &otlp,
        &[json_type, ("authorization", "Bearer s3cret")],
        body,
    );
    assert_eq!(resp.status, 200, "{}", text(&resp));

    let folded = format!("{}/ingest?name=tok-text.cpu&format=folded", server.url());
    assert_eq!(http.post(&folded, b"a;b 1".to_vec()).status, 401);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut client = ProfilesServiceClient::connect(format!("http://{listen}"))
            .await
            .unwrap();
        let err = client.export(ebpf_request("tok-grpc")).await.unwrap_err();
        let mut request = tonic::Request::new(ebpf_request("tok-grpc"));
        request
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        client.export(request).await.map(|_| err.code())
    });
    assert_eq!(status.unwrap(), tonic::Code::Unauthenticated);
    assert_eq!(
        values(&http, &server, "service_name"),
        json!(["tok", "tok-grpc", "tok-otlp"])
    );
}
