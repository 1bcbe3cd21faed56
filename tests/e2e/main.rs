//! End-to-end tests: they run the real `cinder` binary (and, where a test says so, a real
//! headless Chromium and the project's Go scrape target in `tests/targets`).
//!
//! Everything lives in this one test target on purpose: each test target links DataFusion
//! again. The profiles they need are generated ([`fixtures`]) or recorded from the Go
//! target. Tests that need a tool missing on this machine (the built UI, Chromium, Go)
//! print a skip notice, except under `cargo xtask test`, which installs them and sets
//! `CINDER_E2E_REQUIRE=1`, making them fail instead. The real-world corpus
//! `../shared/testdata/pprof` (or `$CINDER_SHARED_DIR/testdata/pprof`) is an extra: its
//! tests skip without it, and fail only under `CI=true`. Skips are written to
//! `$CINDER_SKIP_LOG` when set, so `cargo xtask test` can count them.

#![allow(unreachable_pub, dead_code, clippy::type_complexity)]

mod agents;
mod browser;
mod bucket;
mod cli;
mod edge;
mod fixtures;
mod harness;
mod ingest;
mod limits;
mod push;
mod query;
mod rates;
mod scrape;
mod store;
mod ui_analysis;
mod ui_auth;
mod ui_http;
mod ui_pages;
mod ui_perf;
