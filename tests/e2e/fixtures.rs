//! The profiles the UI tests look at, generated here (deterministic, owned by the
//! project): a CPU profile of a Fibonacci program using `math/big`, and two heap profiles
//! of one process six seconds apart. They need nothing beside the repository.

use std::{collections::BTreeMap, io::Write as _};

use proto::{Function, Line, Location, Message as _, Profile, Sample, ValueType};

/// The time of [`fib`], unix ms.
pub const FIB_MS: i64 = 1_626_441_030_776;
/// The times of [`heap`]`(0)` and [`heap`]`(1)`, unix ns.
pub const HEAP_NS: [i64; 2] = [1_644_509_272_337_470_000, 1_644_509_278_338_696_000];

/// One sample: frames leaf first as (function, file), and its values.
type Stack = (&'static [(&'static str, &'static str)], &'static [i64]);

const FIB_MAIN: (&str, &str) = ("main.calculateFib", "/app/fib/main.go");
const INT_ADD: (&str, &str) = ("math/big.(*Int).Add", "/usr/lib/go/src/math/big/int.go");
const NAT_ADD: (&str, &str) = ("math/big.nat.add", "/usr/lib/go/src/math/big/nat.go");
const ADD_VV: (&str, &str) = ("math/big.addVV", "/usr/lib/go/src/math/big/arith.go");
const NAT_MAKE: (&str, &str) = ("math/big.nat.make", "/usr/lib/go/src/math/big/nat.go");
const NAT_NORM: (&str, &str) = ("math/big.nat.norm", "/usr/lib/go/src/math/big/nat.go");
const MALLOCGC: (&str, &str) = ("runtime.mallocgc", "/usr/lib/go/src/runtime/malloc.go");
const MAKESLICE: (&str, &str) = ("runtime.makeslice", "/usr/lib/go/src/runtime/slice.go");

/// A 10 s CPU profile (`samples/count`, `cpu/nanoseconds`, period 10 ms) at [`FIB_MS`]:
/// every stack starts in `main.calculateFib`; `math/big.addVV` is the hottest leaf.
pub fn fib() -> Vec<u8> {
    const PERIOD: i64 = 10_000_000;
    let stacks: &[(&[(&str, &str)], i64)] = &[
        (&[ADD_VV, NAT_ADD, INT_ADD, FIB_MAIN], 131),
        (&[NAT_MAKE, NAT_ADD, INT_ADD, FIB_MAIN], 23),
        (
            &[MALLOCGC, MAKESLICE, NAT_MAKE, NAT_ADD, INT_ADD, FIB_MAIN],
            37,
        ),
        (&[NAT_NORM, NAT_ADD, INT_ADD, FIB_MAIN], 11),
        (&[INT_ADD, FIB_MAIN], 6),
        (&[FIB_MAIN], 4),
    ];
    let samples: Vec<(&[(&str, &str)], Vec<i64>)> = stacks
        .iter()
        .map(|&(frames, n)| (frames, vec![n, n * PERIOD]))
        .collect();
    build(
        &[("samples", "count"), ("cpu", "nanoseconds")],
        ("cpu", "nanoseconds"),
        PERIOD,
        FIB_MS * 1_000_000,
        10_000_000_000,
        &samples,
    )
}

/// Heap profile `i` (0 or 1) of one process (`alloc_objects`, `alloc_space`,
/// `inuse_objects`, `inuse_space`) at [`HEAP_NS`]`[i]`; the second has grown.
pub fn heap(i: usize) -> Vec<u8> {
    heap_at(i, HEAP_NS[i.min(1)])
}

/// [`heap`]`(i)` recorded at `time_nanos`.
pub fn heap_at(i: usize, time_nanos: i64) -> Vec<u8> {
    const SERVE: (&str, &str) = ("main.serveRequests", "/app/many/main.go");
    const CACHE: (&str, &str) = ("main.(*cache).put", "/app/many/cache.go");
    const DECODE: (&str, &str) = (
        "encoding/json.(*decodeState).object",
        "/usr/lib/go/src/encoding/json/decode.go",
    );
    const BUFFER: (&str, &str) = ("bytes.growSlice", "/usr/lib/go/src/bytes/buffer.go");
    const MAIN: (&str, &str) = ("main.main", "/app/many/main.go");
    const NEWPROC: (&str, &str) = ("runtime.malg", "/usr/lib/go/src/runtime/proc.go");
    let stacks: [Stack; 4] = [
        (&[CACHE, SERVE, MAIN], &[120, 61_440_000, 40, 20_480_000]),
        (
            &[MALLOCGC, DECODE, SERVE, MAIN],
            &[900, 14_745_600, 12, 196_608],
        ),
        (&[BUFFER, SERVE, MAIN], &[64, 8_388_608, 2, 262_144]),
        (&[NEWPROC, MAIN], &[33, 135_168, 33, 135_168]),
    ];
    let grow = [1, 3][i.min(1)];
    let samples: Vec<(&[(&str, &str)], Vec<i64>)> = stacks
        .iter()
        .enumerate()
        .map(|(k, &(frames, values))| {
            // The second profile: the cache and the decoder grew, the rest stayed.
            let factor = if k < 2 { grow } else { 1 };
            (frames, values.iter().map(|v| v * factor).collect())
        })
        .collect();
    build(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes"),
        524_288,
        time_nanos,
        0,
        &samples,
    )
}

/// A gzipped pprof profile with one function and location per distinct (name, file).
fn build(
    sample_types: &[(&str, &str)],
    period_type: (&str, &str),
    period: i64,
    time_nanos: i64,
    duration_nanos: i64,
    samples: &[(&[(&str, &str)], Vec<i64>)],
) -> Vec<u8> {
    let mut strings = Strings::default();
    let mut functions: Vec<Function> = Vec::new();
    let mut ids: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut sample = Vec::new();
    for (frames, values) in samples {
        let mut location_id = Vec::new();
        for &(name, file) in *frames {
            let id = *ids.entry((name, file)).or_insert_with(|| {
                functions.push(Function {
                    id: functions.len() as u64 + 1,
                    name: strings.id(name),
                    system_name: strings.id(name),
                    filename: strings.id(file),
                    start_line: 1,
                });
                functions.len() as u64
            });
            location_id.push(id);
        }
        sample.push(Sample {
            location_id,
            value: values.clone(),
            label: Vec::new(),
        });
    }
    let location = functions
        .iter()
        .map(|f| Location {
            id: f.id,
            line: vec![Line {
                function_id: f.id,
                line: 10 + f.id as i64,
                column: 0,
            }],
            ..Location::default()
        })
        .collect();
    let sample_type = sample_types
        .iter()
        .map(|&(ty, unit)| ValueType {
            ty: strings.id(ty),
            unit: strings.id(unit),
        })
        .collect();
    let period_type = Some(ValueType {
        ty: strings.id(period_type.0),
        unit: strings.id(period_type.1),
    });
    let profile = Profile {
        sample_type,
        sample,
        location,
        function: functions,
        string_table: strings.0.into_iter().map(String::into_bytes).collect(),
        time_nanos,
        duration_nanos,
        period_type,
        period,
        ..Profile::default()
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec()).expect("gzip");
    gz.finish().expect("gzip")
}

/// A pprof string table under construction (index 0 is the empty string).
struct Strings(Vec<String>);

impl Default for Strings {
    fn default() -> Self {
        Strings(vec![String::new()])
    }
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        match self.0.iter().position(|x| x == s) {
            Some(i) => i as i64,
            None => {
                self.0.push(s.to_owned());
                self.0.len() as i64 - 1
            }
        }
    }
}

#[test]
fn fixtures_are_valid_profiles_with_the_stacks_the_ui_tests_look_for() {
    let fib = proto::read(&fib(), 1 << 20).expect("fib reads");
    fib.validate().expect("fib is valid");
    let index = fib.index().unwrap();
    let names: Vec<&str> = fib.function.iter().map(|f| index.string(f.name)).collect();
    assert!(names.contains(&"main.calculateFib") && names.contains(&"math/big.addVV"));
    let total: i64 = fib.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total, 212);
    let (a, b) = (
        proto::read(&heap(0), 1 << 20).unwrap(),
        proto::read(&heap(1), 1 << 20).unwrap(),
    );
    a.validate().unwrap();
    b.validate().unwrap();
    assert_eq!(a.sample_type.len(), 4);
    let inuse = |p: &Profile| p.sample.iter().map(|s| s.value[3]).sum::<i64>();
    assert!(inuse(&b) > inuse(&a), "the second heap profile grew");
}
