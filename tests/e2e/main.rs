//! End-to-end tests: they run the real `cinder` binary (and, where a test says so, a real
//! headless Chromium, the real Go scrape target and the shared real profiles).
//!
//! Everything lives in this one test target on purpose: each test target links DataFusion
//! again. Tests that need something missing on this machine (the built UI, Chromium, Go,
//! `../shared`) print a skip notice, except under `cargo xtask test`, which sets
//! `CINDER_E2E_REQUIRE=1` and makes them fail instead.

#![allow(unreachable_pub, dead_code, clippy::type_complexity)]

mod browser;
mod cli;
mod harness;
mod ingest;
mod push;
mod query;
mod scrape;
mod ui_analysis;
mod ui_http;
mod ui_pages;
mod ui_perf;
