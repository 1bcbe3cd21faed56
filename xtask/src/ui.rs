//! Building the UI with trunk, incrementally: trunk runs only when one of its inputs
//! changed since the last build into the same folder, and then writes into a staging
//! folder whose files are copied over the output folder only where their bytes differ.
//! So the output folder's files keep their times when nothing changed, and the backend's
//! `build.rs` (which embeds them for `cargo xtask dist`) has no reason to run again.

use std::{
    collections::BTreeSet,
    fs,
    hash::{DefaultHasher, Hasher as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{root, status, step, tools};

/// What the UI build reads, relative to the workspace root (folders are walked).
const INPUTS: &[&str] = &[
    "index.html",
    "Trunk.toml",
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "style",
    "frontend",
    "shared",
];

/// Builds the UI into `target/ui-dist` (debug) or `target/ui-dist-release`, or leaves it
/// as it is when its inputs are unchanged. Returns the folder.
pub(crate) fn build(release: bool) -> Result<PathBuf> {
    let root = root();
    let dist = root.join(if release {
        "target/ui-dist-release"
    } else {
        "target/ui-dist"
    });
    let stamp = dist.with_extension("inputs");
    let key = inputs_key(&root, release)?;
    if dist.join("index.html").is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&key)
    {
        step(&format!(
            "the UI's inputs are unchanged: {} is up to date",
            dist.display()
        ));
        return Ok(dist);
    }
    let staging = dist.with_extension("staging");
    let _ = fs::remove_dir_all(&staging);
    step(&format!(
        "building the UI with trunk ({})",
        if release { "release" } else { "debug" }
    ));
    trunk(&root, &staging, release)?;
    let changed = sync(&staging, &dist)?;
    fs::remove_dir_all(&staging).ok();
    fs::write(&stamp, key).with_context(|| format!("writing {}", stamp.display()))?;
    step(&format!(
        "{changed} UI file(s) changed in {}",
        dist.display()
    ));
    Ok(dist)
}

fn trunk(root: &Path, dist: &Path, release: bool) -> Result<()> {
    let mut cmd = Command::new("trunk");
    cmd.current_dir(root)
        .args(["build", "--offline", "--dist"])
        .arg(dist);
    if release {
        cmd.arg("--release");
    }
    cmd.env("PATH", tools::tool_path()?);
    // trunk calls cargo; make sure no outer cargo's settings leak into that build.
    cmd.env_remove("CARGO_TARGET_DIR").env_remove("RUSTFLAGS");
    status(&mut cmd).context("trunk build failed")
}

/// A key for everything the build depends on: the tools' versions, the mode, and the
/// paths and bytes of every input file.
fn inputs_key(root: &Path, release: bool) -> Result<String> {
    let mut hasher = DefaultHasher::new();
    hasher.write(tools::TRUNK_VERSION.as_bytes());
    hasher.write(tools::wasm_bindgen_version_in_lock()?.as_bytes());
    hasher.write_u8(u8::from(release));
    let mut files = BTreeSet::new();
    for input in INPUTS {
        collect(&root.join(input), &mut files);
    }
    for file in &files {
        let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        hasher.write(
            file.strip_prefix(root)
                .unwrap_or(file)
                .as_os_str()
                .as_encoded_bytes(),
        );
        hasher.write_usize(bytes.len());
        hasher.write(&bytes);
    }
    Ok(format!("{:016x} {} files\n", hasher.finish(), files.len()))
}

/// Every file under `path` (or `path` itself), skipping build output folders.
fn collect(path: &Path, files: &mut BTreeSet<PathBuf>) {
    if path.is_file() {
        files.insert(path.to_path_buf());
        return;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() != "target" {
            collect(&entry.path(), files);
        }
    }
}

/// Makes `dst` hold exactly the files of `src`, writing only those whose bytes differ and
/// removing those `src` lacks. Returns how many files were written or removed.
pub(crate) fn sync(src: &Path, dst: &Path) -> Result<usize> {
    let (mut wanted, mut present) = (BTreeSet::new(), BTreeSet::new());
    collect(src, &mut wanted);
    collect(dst, &mut present);
    let mut changed = 0;
    let mut keep = BTreeSet::new();
    for from in &wanted {
        let rel = from.strip_prefix(src).expect("under src");
        let to = dst.join(rel);
        keep.insert(to.clone());
        let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        if fs::read(&to).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()))?;
        changed += 1;
    }
    for stale in present.difference(&keep) {
        fs::remove_file(stale).with_context(|| format!("removing {}", stale.display()))?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime(path: &Path) -> std::time::SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn sync_writes_only_what_differs_and_removes_what_is_gone() {
        let tmp = std::env::temp_dir().join(format!("xtask-sync-{}", std::process::id()));
        let (src, dst) = (tmp.join("src"), tmp.join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::create_dir_all(&dst).unwrap();
        fs::write(src.join("same.js"), "same").unwrap();
        fs::write(src.join("sub/new.css"), "new").unwrap();
        fs::write(dst.join("same.js"), "same").unwrap();
        fs::write(dst.join("old.wasm"), "old").unwrap();
        let before = mtime(&dst.join("same.js"));
        std::thread::sleep(std::time::Duration::from_millis(20));

        assert_eq!(sync(&src, &dst).unwrap(), 2, "one written, one removed");
        assert_eq!(
            mtime(&dst.join("same.js")),
            before,
            "equal bytes are left alone"
        );
        assert_eq!(fs::read_to_string(dst.join("sub/new.css")).unwrap(), "new");
        assert!(!dst.join("old.wasm").exists());
        assert_eq!(
            sync(&src, &dst).unwrap(),
            0,
            "a second sync changes nothing"
        );
        fs::remove_dir_all(&tmp).unwrap();
    }
}
