//! The integration suite: one test binary for every file in this folder
//! (the seeded simulator, `tests/sim/`, is a binary of its own). Each file is
//! a module, so a test's full name is `file::test`, e.g.
//! `sync::three_offices_in_a_line_relay_both_ways`:
//!
//! ```sh
//! tools/test --test suite sync::                        # one file's tests
//! tools/test --test suite sync::three_offices_in_a_line_relay_both_ways -- --exact
//! ```
//!
//! The helpers every file may use: `support` (replicas in temp dirs, an
//! admin node in this process), `cluster` (real daemons as child
//! processes), `web` (the web agenda over HTTP and in headless Chromium).
//!
//! One process runs every test, two or more at a time: a test must not
//! change what the process shares (environment variables, the current
//! folder, the global tracing subscriber) or count what other tests also
//! make (threads, open files, memory). A test that needs the process to
//! itself runs in a child process of its own (see `support::LogCapture`).

mod cluster;
mod support;
mod web;

mod access_roles;
mod admin_cli;
mod admin_logs;
mod admin_reveal;
mod admin_socket;
mod admin_spelling;
mod at_rest;
mod at_rest_convert;
mod at_rest_scan;
mod backup_restore;
mod bench_smoke;
mod bulk;
mod cli_local;
mod clocks_bounds;
mod clocks_store;
mod compression;
mod demo;
mod docs;
mod fault_clock;
mod fault_crash;
mod fault_disk;
mod fault_links;
mod first_week;
mod fixtures_v1;
mod forget;
mod fuzz_admin_request;
mod fuzz_corpus;
mod hostile_peer;
mod house;
mod metrics;
mod office_zone;
mod packaging;
mod recovery_drill;
mod reload;
mod reload_schema;
mod required;
mod rights;
mod rights_store;
mod rotation;
mod schedule;
mod schema_changes;
mod schema_offices;
mod sealed;
mod sealed_logs;
mod secrets_local;
mod service_files;
mod service_unit;
mod store_convergence;
mod store_rules;
mod sync;
mod threats;
mod versions;
mod walkthrough;
mod web_agenda;
mod web_browser;
mod web_feed;
mod web_limits;
