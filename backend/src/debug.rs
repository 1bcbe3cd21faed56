//! Cinder's own CPU profile at `GET /debug/pprof/profile?seconds=N` and its in-use heap at
//! `GET /debug/pprof/heap`, served like Go's `net/http/pprof` (gzipped pprof bodies), so
//! that Cinder can scrape itself.
//!
//! The heap profile is jemalloc's: the `cinder` binary allocates through jemalloc, built
//! with its sampling profiler on (`.cargo/config.toml`), and `jemalloc_pprof` turns a dump
//! into pprof (`inuse_space`/`bytes`), symbolized in process. A process that does not
//! allocate through jemalloc answers [`HeapError::Unavailable`].
//!
//! Sampling uses pprof-rs (SIGPROF at 100 Hz, unwinding skipped inside libc, libgcc,
//! pthread and the vDSO, where it could deadlock); the report is symbolized in-process
//! (the release profile keeps symbols) and converted to our own pprof types.

use std::{
    collections::HashMap,
    io::Write as _,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, UNIX_EPOCH},
};

use proto::{Function, Label, Line, Location, Message as _, Profile, Sample, ValueType};

/// Sampling frequency (Hz).
pub const FREQUENCY: i32 = 100;
/// Longest profile one request may ask for.
pub const MAX_SECONDS: u64 = 300;

/// Why no profile could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("a CPU profile is already being recorded")]
    Busy,
    #[error("profiler: {0}")]
    Profiler(String),
}

/// Why no heap profile could be produced.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    #[error(
        "heap profiling is off: this process does not allocate through jemalloc with its profiler on"
    )]
    Unavailable,
    #[error("heap profiler: {0}")]
    Dump(String),
}

/// The in-use heap (jemalloc's sampled live allocations, scaled to bytes) as a gzipped
/// pprof body with function names. Dumps one at a time.
pub async fn heap_profile() -> Result<Vec<u8>, HeapError> {
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(HeapError::Unavailable)?;
    let mut ctl = ctl.clone().lock_owned().await;
    if !ctl.activated() {
        return Err(HeapError::Unavailable);
    }
    tokio::task::spawn_blocking(move || ctl.dump_pprof())
        .await
        .map_err(|e| HeapError::Dump(e.to_string()))?
        .map_err(|e| HeapError::Dump(format!("{e:#}")))
}

/// Loads this binary's symbol tables into the symbolizer both profilers share, so that the
/// first profile does not pay for it (in a debug build that takes seconds, which made the
/// first self-scrape of the CPU time out). Blocking; call it once, off the async threads.
pub fn warm_symbolizer() {
    let here = warm_symbolizer as fn() as usize as *mut std::ffi::c_void;
    backtrace::resolve(here, |_| {});
}

/// Only one CPU profile can be recorded at a time (the profiler is process-wide).
static BUSY: AtomicBool = AtomicBool::new(false);

struct BusyGuard;

impl Drop for BusyGuard {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

/// Records a CPU profile for `duration` (blocking the calling thread) and returns it as a
/// gzipped pprof body.
pub fn cpu_profile(duration: Duration) -> Result<Vec<u8>, ProfileError> {
    if BUSY.swap(true, Ordering::AcqRel) {
        return Err(ProfileError::Busy);
    }
    let _busy = BusyGuard;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| ProfileError::Profiler(e.to_string()))?;
    std::thread::sleep(duration);
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Profiler(e.to_string()))?;
    drop(guard);
    let profile = to_profile(&report);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())
        .and_then(|()| gz.finish())
        .map_err(|e| ProfileError::Profiler(e.to_string()))
}

/// Strips the `::h0123456789abcdef` hash rustc appends to symbol names.
fn clean_name(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// Frames of the sampling machinery itself (signal handler, unwinder, signal trampoline).
fn is_profiler_frame(name: &str) -> bool {
    name.starts_with("backtrace::")
        || name.starts_with("pprof::")
        || name.starts_with("<pprof::")
        || name.contains("perf_signal_handler")
        || name == "__restore_rt"
}

/// A pprof-rs report as a pprof profile: one function per (name, file), one location per
/// distinct frame (its inlined functions as lines, innermost first), samples aggregated by
/// (stack, thread name) with a `thread` label.
fn to_profile(report: &pprof::Report) -> Profile {
    let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str| -> i64 {
        if let Some(&id) = string_ids.get(s) {
            return id;
        }
        strings.push(s.as_bytes().to_vec());
        let id = strings.len() as i64 - 1;
        string_ids.insert(s.to_owned(), id);
        id
    };
    let samples_ty = intern("samples");
    let count = intern("count");
    let cpu = intern("cpu");
    let nanoseconds = intern("nanoseconds");
    let thread = intern("thread");

    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(i64, i64), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<Vec<(u64, i64)>, u64> = HashMap::new();
    let mut stacks: HashMap<(Vec<u64>, i64), i64> = HashMap::new();
    for (frames, count) in &report.data {
        let mut stack = Vec::with_capacity(frames.frames.len());
        // The leaf end holds the profiler's own signal handler and unwinder: skip them.
        let own = frames
            .frames
            .iter()
            .take_while(|frame| frame.iter().any(|s| is_profiler_frame(&s.name())))
            .count();
        for frame in &frames.frames[own..] {
            let lines: Vec<(u64, i64)> = frame
                .iter()
                .map(|symbol| {
                    let name = symbol.name();
                    let name = intern(clean_name(&name));
                    let system_name = intern(&symbol.sys_name());
                    let file = intern(&symbol.filename());
                    let id = *function_ids.entry((name, file)).or_insert_with(|| {
                        functions.push(Function {
                            id: functions.len() as u64 + 1,
                            name,
                            system_name,
                            filename: file,
                            start_line: 0,
                        });
                        functions.len() as u64
                    });
                    (id, i64::from(symbol.lineno()))
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            let id = *location_ids.entry(lines.clone()).or_insert_with(|| {
                locations.push(Location {
                    id: locations.len() as u64 + 1,
                    mapping_id: 0,
                    address: 0,
                    line: lines
                        .iter()
                        .map(|&(function_id, line)| Line {
                            function_id,
                            line,
                            column: 0,
                        })
                        .collect(),
                    is_folded: false,
                });
                locations.len() as u64
            });
            stack.push(id);
        }
        if stack.is_empty() {
            continue;
        }
        let thread_name = intern(&frames.thread_name_or_id());
        *stacks.entry((stack, thread_name)).or_default() += *count as i64;
    }
    let period = 1_000_000_000 / i64::from(report.timing.frequency.max(1));
    let sample = stacks
        .into_iter()
        .map(|((location_id, thread_name), n)| Sample {
            location_id,
            value: vec![n, n * period],
            label: vec![Label {
                key: thread,
                str: thread_name,
                num: 0,
                num_unit: 0,
            }],
        })
        .collect();
    Profile {
        sample_type: vec![
            ValueType {
                ty: samples_ty,
                unit: count,
            },
            ValueType {
                ty: cpu,
                unit: nanoseconds,
            },
        ],
        sample,
        location: locations,
        function: functions,
        string_table: strings,
        time_nanos: report
            .timing
            .start_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64,
        duration_nanos: report.timing.duration.as_nanos() as i64,
        period_type: Some(ValueType {
            ty: cpu,
            unit: nanoseconds,
        }),
        period,
        ..Profile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // This test binary allocates through jemalloc, as the `cinder` binary does.
    #[global_allocator]
    static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    /// Keeps 64 MiB live in 1 MiB blocks (many sampled allocations at 512 KiB a sample).
    #[inline(never)]
    fn hold_a_lot_of_memory_for_the_heap_test() -> Vec<Vec<u8>> {
        (0..64)
            .map(|i| std::hint::black_box(vec![i as u8; 1 << 20]))
            .collect()
    }

    #[tokio::test]
    async fn the_heap_profile_names_the_function_holding_memory() {
        let held = hold_a_lot_of_memory_for_the_heap_test();
        let body = heap_profile().await.expect("a heap profile");
        let profile = proto::read(&body, 64 << 20).unwrap();
        let index = profile.index().expect("a valid profile");
        let types: Vec<&str> = profile
            .sample_type
            .iter()
            .map(|t| index.string(t.ty))
            .collect();
        assert_eq!(types, ["inuse_space"]);
        let mut holding = 0;
        for sample in &profile.sample {
            let names = sample.location_id.iter().flat_map(|&id| {
                let location = profile.location.iter().find(|l| l.id == id).unwrap();
                location.line.iter().map(|line| {
                    let f = profile.function.iter().find(|f| f.id == line.function_id);
                    index.string(f.unwrap().name)
                })
            });
            if names
                .into_iter()
                .any(|n| n.contains("hold_a_lot_of_memory_for_the_heap_test"))
            {
                holding += sample.value[0];
            }
        }
        assert!(
            holding > 32 << 20,
            "only {holding} bytes under the holding function"
        );
        drop(held);
    }

    #[test]
    fn rust_hashes_are_stripped_from_names() {
        assert_eq!(
            clean_name("backend::query::run::h0123456789abcdef"),
            "backend::query::run"
        );
        assert_eq!(clean_name("main"), "main");
        assert_eq!(clean_name("a::hello"), "a::hello");
    }

    #[test]
    fn a_busy_process_profile_names_its_own_functions() {
        // Burn CPU on another thread while profiling this one for a moment.
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let burner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                x
            })
        };
        // Other tests of this process run beside it and take samples too: a few tries.
        let mut names = Vec::new();
        for _ in 0..5 {
            let body = match cpu_profile(Duration::from_millis(700)) {
                Ok(body) => body,
                // Another test is recording: wait for it.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let profile = proto::read(&body, 64 << 20).unwrap();
            let index = profile.index().expect("a valid profile");
            names = profile
                .function
                .iter()
                .map(|f| index.string(f.name).to_owned())
                .collect();
            if names
                .iter()
                .any(|n| n.contains("a_busy_process_profile_names_its_own_functions"))
            {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        burner.join().unwrap();
        assert!(
            names
                .iter()
                .any(|n| n.contains("a_busy_process_profile_names_its_own_functions")),
            "{names:?}"
        );
        // (`backtrace::` frames may belong to another test symbolizing a heap profile.)
        assert!(
            !names.iter().any(|n| n.starts_with("pprof::")),
            "the profiler's own frames are left out: {names:?}"
        );
        assert!(cpu_profile(Duration::ZERO).is_ok(), "free again");
    }
}
