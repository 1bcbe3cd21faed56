//! With the `embed-ui` feature, turns the trunk output folder named by `CINDER_UI_DIST`
//! into a generated table of `include_bytes!` entries, so one file runs Cinder.
//!
//! It reruns only when this script, `CINDER_UI_DIST`, or a file of that folder (or the
//! folder's list of files) changed: `cargo xtask` leaves unchanged UI files untouched, so
//! a build with nothing new neither reruns this nor recompiles the backend.

use std::{env, fmt::Write as _, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CINDER_UI_DIST");
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_ui.rs");
    let mut code = String::from(
        "/// Files of the embedded UI: (path relative to the UI root, bytes).\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    if env::var_os("CARGO_FEATURE_EMBED_UI").is_some() {
        let dist = env::var("CINDER_UI_DIST").expect(
            "the embed-ui feature needs CINDER_UI_DIST, the folder trunk built the UI into",
        );
        let dist = fs::canonicalize(&dist).unwrap_or_else(|e| panic!("CINDER_UI_DIST={dist}: {e}"));
        println!("cargo:rerun-if-changed={}", dist.display());
        let mut files = Vec::new();
        collect(&dist, &dist, &mut files);
        assert!(
            files.iter().any(|(rel, _)| rel == "index.html"),
            "CINDER_UI_DIST={} holds no index.html",
            dist.display()
        );
        for (rel, abs) in files {
            println!("cargo:rerun-if-changed={abs}");
            writeln!(code, "    ({rel:?}, include_bytes!({abs:?})),").unwrap();
        }
    }
    code.push_str("];\n");
    fs::write(out, code).expect("write embedded_ui.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("read UI dist").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.push((rel, path.to_string_lossy().into_owned()));
        }
    }
}
