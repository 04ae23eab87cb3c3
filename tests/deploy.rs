//! The deployable artefacts kept honest against the build: the compilers the Dockerfile
//! and `Cargo.toml` name can build the locked dependencies, and the runtime stage of the
//! Dockerfile installs every shared library the binary loads.
//!
//! No container engine runs here, so the image itself is not built; the runtime check
//! reads the binary (`ldd`), Debian's package database (`dpkg -S`, `dpkg-query`) and the
//! Dockerfile. A minimal root made from exactly those packages (debootstrap) is not built
//! either: it needs network access to a Debian mirror and minutes of CI time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

/// "1.95" or "1.95.0" as (1, 95).
fn minor_version(v: &str) -> (u32, u32) {
    let mut it = v.trim().split('.').map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap_or(0))
}

/// The `rust-version` of Cargo.toml's `[package]`.
fn package_rust_version() -> (u32, u32) {
    let text = read("Cargo.toml");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rust-version"))
        .expect("Cargo.toml declares no rust-version");
    minor_version(line.split('"').nth(1).unwrap())
}

/// The tag of the builder stage's `FROM rust:X.Y-...`.
fn dockerfile_rust_version(dockerfile: &str) -> (u32, u32) {
    let from = dockerfile
        .lines()
        .find(|l| l.starts_with("FROM rust:"))
        .expect("no FROM rust: stage");
    let tag = from["FROM rust:".len()..].split(['-', ' ']).next().unwrap();
    minor_version(tag)
}

#[test]
fn the_named_compilers_can_build_the_locked_dependencies() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resolved: BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let (need, who) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "ssogate" && resolved.contains(p["id"].as_str().unwrap()))
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            Some((minor_version(v), format!("{} {}", p["name"], p["version"])))
        })
        .max()
        .unwrap();
    let declared = package_rust_version();
    let image = dockerfile_rust_version(&read("Dockerfile"));
    assert!(
        need <= declared,
        "{who} needs Rust {need:?}; Cargo.toml declares {declared:?}"
    );
    assert!(
        declared <= image,
        "Cargo.toml declares Rust {declared:?}; the Dockerfile builds with {image:?}"
    );
}

/// The packages the Dockerfile's last stage installs with apt-get.
fn runtime_packages(dockerfile: &str) -> BTreeSet<String> {
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    let install = last
        .split("apt-get install")
        .nth(1)
        .expect("the runtime stage installs nothing");
    let mut out = BTreeSet::new();
    for word in install.split_whitespace() {
        if word == "&&" {
            break;
        }
        if word.starts_with('-') || word == "\\" {
            continue;
        }
        out.insert(word.to_string());
    }
    out
}

fn dpkg_query(args: &[&str]) -> String {
    let out = Command::new("dpkg-query").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The packages a Debian slim image has before the Dockerfile adds any: the essential
/// and required ones (as installed here), with everything they depend on.
fn base_and_closure(start: &BTreeSet<String>) -> BTreeSet<String> {
    // Package -> its Depends and Pre-Depends (first alternative of each).
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut base = BTreeSet::new();
    let all = dpkg_query(&[
        "-W",
        "-f=${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\n",
    ]);
    for line in all.lines() {
        let mut f = line.split('\t');
        let (Some(name), Some(essential), Some(priority), Some(d)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if essential == "yes" || priority == "required" {
            base.insert(name.to_string());
        }
        let list = d
            .split(',')
            .filter_map(|alt| {
                let first = alt.split('|').next()?.trim();
                let name = first.split([' ', ':']).next()?.trim();
                (!name.is_empty()).then(|| name.to_string())
            })
            .collect();
        deps.insert(name.to_string(), list);
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = base.iter().chain(start.iter()).cloned().collect();
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(deps.get(&p).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn the_runtime_stage_installs_every_shared_library_the_binary_loads() {
    let dockerfile = read("Dockerfile");
    let listed = runtime_packages(&dockerfile);
    assert!(listed.contains("libxmlsec1-openssl"), "{listed:?}");
    let available = base_and_closure(&listed);

    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_ssogate"))
        .output()
        .unwrap();
    assert!(ldd.status.success());
    let ldd = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let mut missing = Vec::new();
    let mut libs = 0;
    for line in ldd.lines() {
        // "libxml2.so.2 => /lib/x86_64-linux-gnu/libxml2.so.2 (0x...)", or the loader.
        let path = match line.split("=>").nth(1) {
            Some(rest) => rest.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if !path.starts_with('/') {
            assert!(!line.contains("not found"), "{line}");
            continue; // linux-vdso
        }
        libs += 1;
        // dpkg knows /lib/... or /usr/lib/... (merged /usr): try both.
        let alt = path
            .strip_prefix("/usr")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/usr{path}"));
        let owner = [path, alt.as_str()].iter().find_map(|p| {
            let out = Command::new("dpkg").args(["-S", p]).output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status
                .success()
                .then(|| text.split(':').next().unwrap_or("").trim().to_string())
        });
        match owner {
            Some(pkg) if available.contains(&pkg) => {}
            Some(pkg) => missing.push(format!("{path} (package {pkg})")),
            None => missing.push(format!("{path} (no package)")),
        }
    }
    assert!(libs >= 4, "ldd listed too little:\n{ldd}");
    assert!(
        missing.is_empty(),
        "the runtime stage lacks: {missing:?}\n(installs {listed:?})"
    );
}

#[test]
fn the_image_runs_as_non_root_with_a_healthcheck_the_binary_answers() {
    let dockerfile = read("Dockerfile");
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = last
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("no USER");
    assert_ne!(user.trim(), "0");
    assert_ne!(user.trim(), "root");
    let health = last.split("HEALTHCHECK").nth(1).expect("no HEALTHCHECK");
    assert!(health.contains("\"probe\""), "{health}");
    // The probe the HEALTHCHECK runs exists and fails when nothing answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["probe", "--admin", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));
}
