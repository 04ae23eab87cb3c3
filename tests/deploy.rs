//! The deployable artefacts kept honest against the build and against the tools that
//! read them:
//!
//! - the compilers the Dockerfile and `Cargo.toml` name can build the locked dependencies,
//!   and the runtime stage of the Dockerfile installs every shared library the binary
//!   loads (`ldd`, `dpkg -S`, `dpkg-query`);
//! - a minimal root made of exactly the files of the runtime stage's packages and their
//!   `Depends`/`Pre-Depends` (as installed on this Debian host, `dpkg -L`), plus the
//!   binary, runs `ssogate check-config` under `chroot` as the image's user: on the
//!   repository's example config, and on every config the deploy/ artefacts ship, laid
//!   out as the container sees it (ConfigMap and Secret volumes with their modes and
//!   owners, emptyDirs, environment from Secrets; compose bind mounts and tmpfs). Secret
//!   values are placeholders in the manifests, so the test puts generated material of
//!   the kind each placeholder names (RSA key, its certificate, random token) in their
//!   place. Needs root (or `unshare -r`); fails otherwise. No container engine runs here,
//!   so the image itself is not built, and the root is made from this host's packages,
//!   not a Debian mirror (no network);
//! - deploy/kubernetes/*.yaml validate with `kubernetes-validate --strict` against pinned
//!   Kubernetes schemas; the one kind it has no schema for, the prometheus-operator
//!   ServiceMonitor, is checked against the pydantic model generated from that CRD
//!   (`cloudcoil-models-prometheus-operator`), unknown fields refused. Both come from
//!   PyPI into the venv of scripts/test.sh, found through `SSOGATE_PYSAML2_PYTHON`
//!   (which also parses the YAML for the other checks, with PyYAML);
//! - probes, ports, the ServiceMonitor chain and the shutdown timing agree with each
//!   embedded ssogate.toml, and the pods run hardened as the image's user;
//! - the compose try-out's Prometheus config passes `promtool check config`, and its
//!   bind mounts and Grafana provisioning point at files that exist.

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

// ---------------------------------------------------------------------------------------
// deploy/kubernetes and deploy/compose
// ---------------------------------------------------------------------------------------

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pinned PyPI tools (scripts/test.sh installs exactly these).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
const SERVICE_MONITOR_MODEL: &str = "cloudcoil-models-prometheus-operator==0.80.1.0";
/// Kubernetes versions the manifests are validated against: the oldest they claim (the
/// kubelet's `preStop: sleep` is on by default since 1.30) and the newest the pinned
/// kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];
/// The image's user (Dockerfile: `useradd --uid 10001`, `USER 10001`).
const IMAGE_UID: u64 = 10001;

/// The Python of scripts/test.sh's venv, with the YAML parser and kubernetes-validate
/// (checked once per test process; the ServiceMonitor model, seconds to import, is
/// checked where it is used).
fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python =
                std::env::var("SSOGATE_PYSAML2_PYTHON").unwrap_or_else(|_| "python3".into());
            let ok = Command::new(&python)
                .args([
                    "-c",
                    "import yaml, kubernetes_validate",
                ])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "{python} lacks PyYAML or {KUBERNETES_VALIDATE}: run scripts/test.sh \
                 (it installs them into target/test-venv), or set SSOGATE_PYSAML2_PYTHON to a python that has them"
            );
            python
        })
        .clone()
}

/// Every YAML document of a file, as JSON (PyYAML's YAML 1.1: `0440` is octal).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
             json.dump(docs, sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// deploy/kubernetes/*.yaml, sorted; sidecar.yaml and standalone.yaml among them.
fn kubernetes_manifests() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    out.sort();
    let names: Vec<String> = out
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["sidecar.yaml", "standalone.yaml"] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    out
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind_of(d) == kind && name_of(d) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the same file"))
}

/// A workload's pod template spec with its ssogate container (the one named `ssogate`).
struct Pod<'a> {
    what: String,
    spec: &'a Value,
    ssogate: &'a Value,
}

fn ssogate_pods(docs: &[Value]) -> Vec<Pod<'_>> {
    docs.iter()
        .filter(|d| matches!(kind_of(d), "Deployment" | "StatefulSet" | "DaemonSet"))
        .filter_map(|d| {
            let spec = &d["spec"]["template"]["spec"];
            let ssogate = spec["containers"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "ssogate")?;
            Some(Pod {
                what: format!("{} {}", kind_of(d), name_of(d)),
                spec,
                ssogate,
            })
        })
        .collect()
}

fn containers(spec: &Value) -> &Vec<Value> {
    spec["containers"].as_array().unwrap()
}

/// The `--config` path of `run --config PATH` (the container's args, else the image's CMD).
fn config_path(args: &[String], what: &str) -> String {
    assert_eq!(
        args.first().map(String::as_str),
        Some("run"),
        "{what}: {args:?}"
    );
    let i = args
        .iter()
        .position(|a| a == "--config")
        .unwrap_or_else(|| panic!("{what}: no --config in {args:?}"));
    args[i + 1].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The Dockerfile's `CMD [...]` of the runtime stage.
fn dockerfile_cmd() -> Vec<String> {
    let dockerfile = read("Dockerfile");
    let line = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("no CMD");
    serde_json::from_str(line).unwrap()
}

/// The ssogate.toml a pod runs: the ConfigMap key mounted where `--config` points.
fn pod_config(docs: &[Value], pod: &Pod<'_>) -> (String, toml::Table) {
    let path = config_path(&strings(&pod.ssogate["args"]), &pod.what);
    let (dir, file) = path.rsplit_once('/').unwrap();
    let mount = pod.ssogate["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", pod.what));
    let volume = volume(pod.spec, mount["name"].as_str().unwrap());
    let cm = volume["configMap"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {dir} is not a ConfigMap", pod.what));
    let text = find(docs, "ConfigMap", cm)["data"][file]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {cm} has no {file}"))
        .to_string();
    let table = toml::from_str(&text).unwrap_or_else(|e| panic!("ConfigMap {cm}/{file}: {e}"));
    (text, table)
}

fn volume<'a>(spec: &'a Value, name: &str) -> &'a Value {
    spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// A config's duration key, with ssogate's default when absent.
fn config_duration(config: &toml::Table, table: &str, key: &str, default: &str) -> Duration {
    let v = config
        .get(table)
        .and_then(|t| t.get(key))
        .and_then(|v| v.as_str())
        .unwrap_or(default);
    humantime::parse_duration(v).unwrap()
}

/// `[listen] key`, overridden by the environment variable as ssogate does.
fn listen_addr(
    config: &toml::Table,
    key: &str,
    env: &BTreeMap<String, String>,
    var: &str,
    default: &str,
) -> std::net::SocketAddr {
    env.get(var)
        .cloned()
        .or_else(|| {
            config
                .get("listen")
                .and_then(|t| t.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| default.to_string())
        .parse()
        .unwrap()
}

/// The container's named or numbered port, as a number.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().unwrap();
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Literal env values of a container (those from Secrets are not needed for addresses).
fn literal_env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn pre_stop_sleep(container: &Value) -> u64 {
    let pre_stop = &container["lifecycle"]["preStop"];
    if pre_stop.is_null() {
        return 0;
    }
    pre_stop["sleep"]["seconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("a preStop other than sleep: {pre_stop}"))
}

/// Seconds of a Kubernetes or compose duration ("30", 30, "20s", "1m30s").
fn seconds(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => humantime::parse_duration(s).unwrap().as_secs(),
        _ => panic!("not a duration: {v}"),
    }
}

#[test]
fn every_kubernetes_manifest_validates_against_the_pinned_schema() {
    let python = python();
    // The tools are the ones scripts/test.sh pins.
    let test_sh = read("scripts/test.sh");
    for pin in [KUBERNETES_VALIDATE, SERVICE_MONITOR_MODEL] {
        assert!(
            test_sh.contains(pin),
            "scripts/test.sh does not install {pin}"
        );
    }
    let version = Command::new(&python)
        .args(["-m", "kubernetes_validate", "--version"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert_eq!(
        Some(version.as_str()),
        KUBERNETES_VALIDATE.split("==").nth(1),
        "the installed kubernetes-validate"
    );
    for file in kubernetes_manifests() {
        let docs = yaml_docs(&file);
        let crds = docs
            .iter()
            .filter(|d| kind_of(d) == "ServiceMonitor")
            .count();
        for version in KUBERNETES_VERSIONS {
            let out = Command::new(&python)
                .args([
                    "-m",
                    "kubernetes_validate",
                    "--strict",
                    "--kubernetes-version",
                ])
                .arg(version)
                .arg(&file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}:\n{text}", file.display());
            let passed = text.lines().filter(|l| l.starts_with("INFO ")).count();
            assert_eq!(passed, docs.len() - crds, "{}:\n{text}", file.display());
            // What it cannot validate: only the CRD, checked by the next test.
            for line in text.lines().filter(|l| !l.starts_with("INFO ")) {
                assert!(
                    line.starts_with("WARN ")
                        && line.contains(
                            "kind ServiceMonitor with api version monitoring.coreos.com/v1"
                        ),
                    "{}: {line}",
                    file.display()
                );
            }
        }
    }
    // --strict refuses what the schema does not know (a misspelt key is not ignored).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let sidecar = read("deploy/kubernetes/sidecar.yaml");
    let typo = sidecar.replacen("readinessProbe:", "readynessProbe:", 1);
    assert_ne!(typo, sidecar);
    std::fs::write(&bad, typo).unwrap();
    let out = Command::new(&python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
        ])
        .arg(KUBERNETES_VERSIONS[0])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("readynessProbe"));
}

/// Validates ServiceMonitors (a JSON list on stdin) against prometheus-operator's model
/// (pydantic, generated from the CRD's schema); a field the model drops (unknown) is
/// refused like a wrong type. Prints a JSON list: null for a valid one, else the reason.
const SERVICE_MONITOR_CHECK: &str = r#"
import json, sys
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
results = []
for doc in json.load(sys.stdin):
    try:
        model = ServiceMonitor.model_validate(doc)
    except Exception as e:
        results.append(str(e))
        continue
    back = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if back != doc:
        results.append("fields the model does not know: %s vs %s" % (json.dumps(doc, sort_keys=True), json.dumps(back, sort_keys=True)))
    else:
        results.append(None)
json.dump(results, sys.stdout)
"#;

/// One Python run (the model takes seconds to import): the reason each one is refused.
fn check_service_monitors(docs: &[Value]) -> Vec<Option<String>> {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .args(["-c", SERVICE_MONITOR_CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(docs).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n(without {SERVICE_MONITOR_MODEL}: run scripts/test.sh, or install it into SSOGATE_PYSAML2_PYTHON's venv)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Option<String>>>(&out.stdout).unwrap()
}

#[test]
fn every_service_monitor_fits_the_operator_model_and_scrapes_the_admin_listener() {
    let mut checked: Vec<(String, Value)> = Vec::new();
    for file in kubernetes_manifests() {
        let docs = yaml_docs(&file);
        let monitors: Vec<Value> = docs
            .iter()
            .filter(|d| kind_of(d) == "ServiceMonitor")
            .cloned()
            .collect();
        let pods = ssogate_pods(&docs);
        if pods.is_empty() {
            continue;
        }
        assert_eq!(monitors.len(), 1, "{}: one ServiceMonitor", file.display());
        checked.push((file.display().to_string(), monitors[0].clone()));

        // ServiceMonitor -> Service (labels, port name) -> pod port -> [listen] admin.
        let sm = &monitors[0];
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        let want = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let services: Vec<&Value> = docs
            .iter()
            .filter(|d| kind_of(d) == "Service")
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| &s["metadata"]["labels"][k.as_str()] == v)
            })
            .collect();
        assert_eq!(
            services.len(),
            1,
            "{}: the ServiceMonitor selects {} Services",
            file.display(),
            services.len()
        );
        let service = services[0];
        let pod = &pods[0];
        let labels = &pod_labels(&docs, &pod.what);
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &labels[k.as_str()],
                v,
                "{}: Service {} does not select {}",
                file.display(),
                name_of(service),
                pod.what
            );
        }
        let (_, config) = pod_config(&docs, pod);
        let admin = listen_addr(
            &config,
            "admin",
            &literal_env(pod.ssogate),
            "SSOGATE_LISTEN_ADMIN",
            "127.0.0.1:9090",
        );
        for endpoint in sm["spec"]["endpoints"].as_array().unwrap() {
            assert_eq!(endpoint["path"], "/metrics");
            let port = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == endpoint["port"])
                .unwrap_or_else(|| {
                    panic!(
                        "{}: Service {} has no port {}",
                        file.display(),
                        name_of(service),
                        endpoint["port"]
                    )
                });
            assert_eq!(
                container_port(pod.ssogate, &port["targetPort"]),
                u64::from(admin.port()),
                "{}: the scraped port is not [listen] admin {admin}",
                file.display()
            );
        }
    }
    // The model check refuses an unknown field and a wrong type.
    let sm = checked[0].1.clone();
    let mut unknown = sm.clone();
    unknown["spec"]["endpoints"][0]["scrapeEvery"] = "30s".into();
    let mut wrong = sm;
    wrong["spec"]["endpoints"][0]["interval"] = "thirty seconds".into();
    let mut docs: Vec<Value> = checked.iter().map(|(_, d)| d.clone()).collect();
    docs.extend([unknown, wrong]);
    let results = check_service_monitors(&docs);
    for ((file, _), result) in checked.iter().zip(&results) {
        assert_eq!(result, &None, "{file}: the ServiceMonitor");
    }
    let refused = &results[checked.len()..];
    assert!(
        refused[0]
            .as_deref()
            .is_some_and(|r| r.contains("scrapeEvery")),
        "{refused:?}"
    );
    assert!(
        refused[1]
            .as_deref()
            .is_some_and(|r| r.contains("interval")),
        "{refused:?}"
    );
}

fn pod_labels<'a>(docs: &'a [Value], what: &str) -> &'a serde_json::Map<String, Value> {
    let (kind, name) = what.split_once(' ').unwrap();
    find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
}

#[test]
fn probes_ports_and_shutdown_timing_match_the_embedded_config() {
    for file in kubernetes_manifests() {
        let docs = yaml_docs(&file);
        for pod in ssogate_pods(&docs) {
            let what = format!("{} {}", file.display(), pod.what);
            let (_, config) = pod_config(&docs, &pod);
            let env = literal_env(pod.ssogate);
            let admin = listen_addr(
                &config,
                "admin",
                &env,
                "SSOGATE_LISTEN_ADMIN",
                "127.0.0.1:9090",
            );
            let public = listen_addr(
                &config,
                "public",
                &env,
                "SSOGATE_LISTEN_PUBLIC",
                "0.0.0.0:8080",
            );
            // The kubelet probes the pod IP, not the container's loopback.
            assert!(
                admin.ip().is_unspecified(),
                "{what}: [listen] admin {admin} is not reachable by the kubelet"
            );
            assert!(
                public.ip().is_unspecified(),
                "{what}: [listen] public {public}"
            );
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &pod.ssogate[probe]["httpGet"];
                assert_eq!(get["path"], path, "{what}: {probe}");
                assert_eq!(
                    container_port(pod.ssogate, &get["port"]),
                    u64::from(admin.port()),
                    "{what}: {probe} port is not [listen] admin {admin}"
                );
            }
            // The Service the Ingress uses sends to the public listener.
            let labels = pod_labels(&docs, &pod.what);
            let public_ports: Vec<u64> = docs
                .iter()
                .filter(|d| kind_of(d) == "Service")
                .filter(|s| {
                    s["spec"]["selector"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .all(|(k, v)| &labels[k.as_str()] == v)
                })
                .flat_map(|s| s["spec"]["ports"].as_array().unwrap().clone())
                .filter(|p| p["name"] == "http")
                .map(|p| container_port(pod.ssogate, &p["targetPort"]))
                .collect();
            assert_eq!(
                public_ports,
                vec![u64::from(public.port())],
                "{what}: Service port http"
            );

            // SIGTERM: drain, then grace; the kubelet's SIGKILL must come later.
            let drain = config_duration(&config, "server", "drain_period", "5s").as_secs();
            let grace = config_duration(&config, "server", "grace_period", "10s").as_secs();
            let termination = pod.spec["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30);
            let own = pre_stop_sleep(pod.ssogate);
            assert!(
                termination > own + drain + grace,
                "{what}: terminationGracePeriodSeconds {termination} <= preStop {own} + drain_period {drain} + grace_period {grace}"
            );
            let ready = &pod.ssogate["readinessProbe"];
            let noticed = ready["periodSeconds"].as_u64().unwrap_or(10)
                * ready["failureThreshold"].as_u64().unwrap_or(3);
            assert!(
                noticed <= drain,
                "{what}: a failing /readyz is noticed after {noticed}s, drain_period is {drain}s"
            );
            // Any other container of the pod (the sidecar's app) serves until ssogate is done.
            for c in containers(pod.spec)
                .iter()
                .filter(|c| c["name"] != "ssogate")
            {
                let sleep = pre_stop_sleep(c);
                assert!(
                    sleep >= own + drain + grace && termination > sleep,
                    "{what}: container {} sleeps {sleep}s before its SIGTERM: needs >= {} and < terminationGracePeriodSeconds {termination}",
                    c["name"],
                    own + drain + grace
                );
            }
            // The upgrade socket's directory is writable (the root filesystem is not).
            let socket = config
                .get("server")
                .and_then(|t| t.get("upgrade_socket"))
                .and_then(|v| v.as_str())
                .unwrap_or("/tmp/ssogate-upgrade.sock");
            let dir = socket.rsplit_once('/').unwrap().0;
            let writable = pod.ssogate["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| {
                    m["mountPath"] == dir
                        && m["readOnly"] != true
                        && !volume(pod.spec, m["name"].as_str().unwrap())["emptyDir"].is_null()
                });
            assert!(
                writable,
                "{what}: no writable emptyDir at {dir} for upgrade_socket {socket}"
            );
        }
    }
}

#[test]
fn pods_run_hardened_as_the_images_user_with_placeholder_secrets() {
    let dockerfile = read("Dockerfile");
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user: u64 = last
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(user, IMAGE_UID);
    for file in kubernetes_manifests() {
        let docs = yaml_docs(&file);
        let mut pods = 0;
        for doc in docs
            .iter()
            .filter(|d| matches!(kind_of(d), "Deployment" | "StatefulSet" | "DaemonSet"))
        {
            pods += 1;
            let spec = &doc["spec"]["template"]["spec"];
            let pod_sc = &spec["securityContext"];
            for c in containers(spec) {
                let what = format!(
                    "{} {} container {}",
                    file.display(),
                    name_of(doc),
                    c["name"]
                );
                let sc = &c["securityContext"];
                // A container setting wins over the pod's.
                let get = |k: &str| {
                    if sc[k].is_null() {
                        pod_sc[k].clone()
                    } else {
                        sc[k].clone()
                    }
                };
                assert_eq!(get("runAsNonRoot"), true, "{what}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                assert_eq!(get("seccompProfile")["type"], "RuntimeDefault", "{what}");
                if c["name"] == "ssogate" {
                    assert_eq!(get("runAsUser"), IMAGE_UID, "{what}");
                }
                for k in ["requests", "limits"] {
                    for r in ["cpu", "memory"] {
                        assert!(
                            c["resources"][k][r].is_string(),
                            "{what}: resources.{k}.{r}"
                        );
                    }
                }
            }
            // ssogate refuses secret files every user may read.
            for v in spec["volumes"].as_array().into_iter().flatten() {
                if let Some(mode) = v["secret"]["defaultMode"].as_u64() {
                    assert_eq!(
                        mode & 0o007,
                        0,
                        "{}: volume {} mode {mode:o}",
                        file.display(),
                        v["name"]
                    );
                } else {
                    assert!(
                        v["secret"].is_null(),
                        "{}: volume {} keeps mode 0644",
                        file.display(),
                        v["name"]
                    );
                }
            }
        }
        assert!(pods > 0, "{}: no workload", file.display());
        // No real secret is committed: every value is a placeholder to replace.
        for secret in docs.iter().filter(|d| kind_of(d) == "Secret") {
            assert!(
                secret["data"].is_null(),
                "{}: Secret {}: use stringData placeholders",
                file.display(),
                name_of(secret)
            );
            for (k, v) in secret["stringData"].as_object().unwrap() {
                assert!(
                    v.as_str().unwrap().contains("REPLACE-ME"),
                    "{}: Secret {} {k} is not a placeholder",
                    file.display(),
                    name_of(secret)
                );
            }
        }
    }
    // The standalone gateway survives a node drain: 2+ replicas and a PodDisruptionBudget.
    let docs = yaml_docs(&root().join("deploy/kubernetes/standalone.yaml"));
    let deployment = find(&docs, "Deployment", "ssogate");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pdb = docs
        .iter()
        .find(|d| kind_of(d) == "PodDisruptionBudget")
        .expect("no PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() >= 1);
}

/// The compose file's services.
fn compose() -> Value {
    let docs = yaml_docs(&root().join("deploy/compose/compose.yaml"));
    assert_eq!(docs.len(), 1);
    docs[0]["services"].clone()
}

/// Short-syntax bind mounts of a compose service: (host path, container path).
fn compose_binds(service: &Value) -> Vec<(PathBuf, String)> {
    let base = root().join("deploy/compose");
    strings(&service["volumes"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                src.starts_with('.'),
                "{v}: only bind mounts of repository files"
            );
            (base.join(src), dst.to_string())
        })
        .collect()
}

/// Copies a file or a directory tree to `dst`.
fn copy_tree(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
}

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

#[test]
fn the_compose_tryout_is_wired_and_its_prometheus_config_passes_promtool() {
    let services = compose();
    for want in ["ssogate", "redis", "app", "prometheus", "grafana"] {
        assert!(
            services[want].is_object(),
            "compose.yaml has no service {want}"
        );
    }
    for (name, service) in services.as_object().unwrap() {
        for (src, _) in compose_binds(service) {
            assert!(
                src.exists(),
                "service {name} mounts {}, which does not exist",
                src.display()
            );
        }
    }

    // Prometheus, with its files where compose mounts them.
    let dir = tempfile::tempdir().unwrap();
    let prometheus = &services["prometheus"];
    for (src, dst) in compose_binds(prometheus) {
        copy_tree(&src, &under(dir.path(), &dst));
    }
    let config_file = strings(&prometheus["command"])
        .iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_string))
        .expect("prometheus: no --config.file");
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(under(dir.path(), &config_file))
        .output()
        .expect("promtool (Debian package prometheus) is not installed: run scripts/test.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SUCCESS: 1 rule files found"),
        "the alert rules are not loaded:\n{text}"
    );

    // It scrapes ssogate's admin listener; the image's HEALTHCHECK asks the same port.
    let (ssogate_toml, config) = compose_ssogate_config(&services["ssogate"]);
    let env = compose_env(&services["ssogate"]);
    let admin = listen_addr(
        &config,
        "admin",
        &env,
        "SSOGATE_LISTEN_ADMIN",
        "127.0.0.1:9090",
    );
    assert!(
        admin.ip().is_unspecified(),
        "{ssogate_toml}: Prometheus scrapes from another container"
    );
    let prometheus_yml = yaml_docs(&under(dir.path(), &config_file));
    let targets = &prometheus_yml[0]["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(
        targets,
        &serde_json::json!([format!("ssogate:{}", admin.port())])
    );
    let healthcheck = read("Dockerfile");
    assert!(healthcheck.contains(&format!("\"--admin\", \"127.0.0.1:{}\"", admin.port())));

    // docker/podman stop: SIGTERM, then SIGKILL after stop_grace_period.
    let drain = config_duration(&config, "server", "drain_period", "5s").as_secs();
    let grace = config_duration(&config, "server", "grace_period", "10s").as_secs();
    let stop = seconds(&services["ssogate"]["stop_grace_period"]);
    assert!(
        stop > drain + grace,
        "stop_grace_period {stop}s <= {drain}s + {grace}s"
    );
    assert_eq!(services["ssogate"]["read_only"], true);
    assert_eq!(
        services["ssogate"]["user"],
        format!("{IMAGE_UID}:{IMAGE_UID}")
    );

    // Grafana: a Prometheus data source at the compose Prometheus, and the dashboard in
    // the folder its provider reads.
    let grafana = &services["grafana"];
    let binds = compose_binds(grafana);
    let provisioning = &binds
        .iter()
        .find(|(_, d)| d == "/etc/grafana/provisioning")
        .expect("grafana: no provisioning mount")
        .0;
    let sources = yaml_docs(&provisioning.join("datasources/prometheus.yml"));
    let source = &sources[0]["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    let port = strings(&prometheus["ports"])[0]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(source["url"], format!("http://prometheus:{port}"));
    let providers = yaml_docs(&provisioning.join("dashboards/ssogate.yml"));
    let folder = providers[0]["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (dashboard, _) = binds
        .iter()
        .find(|(_, d)| d == &format!("{folder}/ssogate.json"))
        .expect("grafana: the dashboard is not mounted where the provider reads");
    assert_eq!(
        dashboard.canonicalize().unwrap(),
        root().join("deploy/grafana/ssogate.json")
    );
}

fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|kv| {
                let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The compose ssogate's config: the bind mount at the image CMD's `--config`.
fn compose_ssogate_config(service: &Value) -> (String, toml::Table) {
    assert!(
        service["command"].is_null(),
        "the test reads the image's CMD"
    );
    let path = config_path(&dockerfile_cmd(), "Dockerfile CMD");
    let (src, _) = compose_binds(service)
        .into_iter()
        .find(|(_, d)| *d == path)
        .unwrap_or_else(|| panic!("compose ssogate: nothing mounted at {path}"));
    let text = std::fs::read_to_string(&src).unwrap();
    let table = toml::from_str(&text).unwrap();
    (src.display().to_string(), table)
}

// ---------------------------------------------------------------------------------------
// The minimal runtime root
// ---------------------------------------------------------------------------------------

/// The installed packages `start` needs, by `Pre-Depends` and `Depends`: of each group
/// of alternatives the first installed package, else an installed provider of a virtual.
fn depends_closure(start: &BTreeSet<String>) -> BTreeSet<String> {
    let all = dpkg_query(&[
        "-W",
        "-f=${Package}\t${Status}\t${Provides}\t${Pre-Depends}, ${Depends}\n",
    ]);
    let mut deps: HashMap<String, String> = HashMap::new();
    let mut providers: HashMap<String, String> = HashMap::new();
    for line in all.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, status, provides, depends] = f[..] else {
            continue;
        };
        if !status.ends_with(" installed") {
            continue;
        }
        deps.insert(name.to_string(), depends.to_string());
        for p in provides.split(',') {
            if let Some(virt) = p.split_whitespace().next() {
                providers
                    .entry(virt.to_string())
                    .or_insert_with(|| name.to_string());
            }
        }
    }
    let bare = |alt: &str| -> String {
        alt.split_whitespace()
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = start.iter().cloned().collect();
    while let Some(p) = todo.pop() {
        let Some(d) = deps.get(&p) else {
            panic!("{p} is not installed on this host (the runtime root is made of this host's packages): apt-get install {p}");
        };
        if !seen.insert(p.clone()) {
            continue;
        }
        for group in d.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let alts: Vec<String> = group.split('|').map(|a| bare(a.trim())).collect();
            let pick = alts
                .iter()
                .find(|a| deps.contains_key(*a))
                .cloned()
                .or_else(|| alts.iter().find_map(|a| providers.get(a).cloned()))
                .unwrap_or_else(|| panic!("{p} needs {group}: nothing installed here provides it"));
            todo.push(pick);
        }
    }
    seen
}

/// A root holding exactly the files of the runtime stage's packages (and what they
/// depend on) plus the binary at /usr/local/bin/ssogate.
struct RuntimeRoot {
    dir: tempfile::TempDir,
    as_root: bool,
}

impl RuntimeRoot {
    fn build() -> RuntimeRoot {
        use std::os::unix::fs::MetadataExt as _;
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let packages = depends_closure(&runtime_packages(&read("Dockerfile")));
        assert!(
            packages.contains("libc6") && packages.contains("libxmlsec1-openssl"),
            "{packages:?}"
        );
        let dir = tempfile::Builder::new()
            .prefix("ssogate-runtime-root.")
            .tempdir()
            .unwrap();
        let root = dir.path();
        // Merged /usr: /lib -> usr/lib etc. come with the base system, not a package.
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(top);
            if let Ok(target) = std::fs::read_link(&host) {
                std::fs::create_dir_all(root.join(&target)).unwrap();
                std::os::unix::fs::symlink(&target, root.join(top)).unwrap();
            }
        }
        let list = Command::new("dpkg")
            .arg("-L")
            .args(&packages)
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        let mut files = 0;
        for path in String::from_utf8_lossy(&list.stdout).lines() {
            if !path.starts_with('/') || path == "/." {
                continue; // "diverted by" notes
            }
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                continue; // listed but not on disk (dpkg path-exclude)
            };
            let dst = under(root, path);
            if meta.file_type().is_symlink() {
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                match std::os::unix::fs::symlink(std::fs::read_link(path).unwrap(), &dst) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        panic!("{path}: {e}")
                    }
                    _ => {}
                }
            } else if meta.is_dir() {
                std::fs::create_dir_all(&dst).unwrap();
            } else {
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(path, &dst).unwrap();
                files += 1;
            }
        }
        assert!(files > 100, "only {files} files");
        let bin = under(root, "/usr/local/bin/ssogate");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_ssogate"), &bin).unwrap();
        // Nothing else: no shell, no coreutils.
        for absent in ["/bin/sh", "/usr/bin/env", "/etc/passwd"] {
            assert!(
                !under(root, absent).exists(),
                "{absent} in the runtime root"
            );
        }
        RuntimeRoot { dir, as_root }
    }

    fn path(&self, abs: &str) -> PathBuf {
        under(self.dir.path(), abs)
    }

    /// Lays out `files` and `dirs` (absolute paths inside the root), runs `ssogate
    /// check-config CONFIG` in the root as `user` with exactly `env`, then removes the
    /// top-level paths it created. Returns (success, output).
    fn check_config(&self, layout: &Layout) -> (bool, String) {
        use std::os::unix::fs::PermissionsExt as _;
        let mut created = Vec::new();
        for mount in &layout.mounts {
            let p = self.path(mount);
            assert!(
                !p.exists(),
                "{mount} would hide package files of the runtime root"
            );
            created.push(p);
        }
        for (dir, mode) in &layout.dirs {
            let p = self.path(dir);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        for f in &layout.files {
            let p = self.path(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
            if self.as_root {
                std::os::unix::fs::chown(&p, Some(0), f.group).unwrap();
            }
        }
        let mut cmd;
        if self.as_root {
            cmd = Command::new("chroot");
            cmd.arg(format!("--userspec={}:{}", layout.user.0, layout.user.1));
        } else {
            // Not root: a user namespace maps us to root, so chroot works; the files stay
            // ours, so the check runs without the image's user.
            cmd = Command::new("unshare");
            cmd.args(["--map-root-user", "chroot"]);
        }
        cmd.arg(self.dir.path())
            .args(["/usr/local/bin/ssogate", "check-config", &layout.config])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(&layout.env);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run {cmd:?}: {e} (needs root, or unshare from util-linux with user namespaces)")
        });
        for p in created {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else if p.exists() {
                std::fs::remove_file(&p).unwrap();
            }
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !self.as_root {
            assert!(
                !text.contains("unshare: "),
                "unshare failed: {text}\nthe runtime-root check needs root, or unprivileged user namespaces"
            );
        }
        (
            out.status.success() && text.contains(&format!("{}: ok", layout.config)),
            text,
        )
    }
}

struct LaidFile {
    path: String,
    bytes: Vec<u8>,
    mode: u32,
    group: Option<u32>,
}

/// A container's view of its files, as far as ssogate reads it.
struct Layout {
    what: String,
    config: String,
    /// The mount points (removed afterwards).
    mounts: Vec<String>,
    dirs: Vec<(String, u32)>,
    files: Vec<LaidFile>,
    env: BTreeMap<String, String>,
    user: (u64, u64),
}

/// An RSA key (PKCS#8 PEM) and a self-signed certificate of it.
fn key_and_certificate() -> (Vec<u8>, Vec<u8>) {
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "ssogate deploy test")
        .unwrap();
    let name = name.build();
    let mut cert = x509::X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (
        key.private_key_to_pem_pkcs8().unwrap(),
        cert.build().to_pem().unwrap(),
    )
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b).unwrap();
    hex::encode(b)
}

/// A Secret's values with each placeholder replaced by material of the kind it names:
/// "REPLACE-ME: PEM private key …" a key, "REPLACE-ME: PEM certificate …" the
/// certificate of that key, any other REPLACE-ME a random token.
fn materialize(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    let (key, cert) = key_and_certificate();
    let token = random_hex();
    secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap();
            let bytes = if v.starts_with("REPLACE-ME: PEM private key") {
                key.clone()
            } else if v.starts_with("REPLACE-ME: PEM certificate") {
                cert.clone()
            } else {
                assert!(
                    !v.starts_with("REPLACE-ME:"),
                    "{k}: unknown placeholder {v}"
                );
                v.replace("REPLACE-ME", &token).into_bytes()
            };
            (k.clone(), bytes)
        })
        .collect()
}

/// How a Kubernetes pod's ssogate container sees its files and environment.
fn pod_layout(docs: &[Value], pod: &Pod<'_>) -> Layout {
    let mut secrets: HashMap<String, BTreeMap<String, Vec<u8>>> = HashMap::new();
    let mut secret = |name: &str| {
        secrets
            .entry(name.to_string())
            .or_insert_with(|| materialize(find(docs, "Secret", name)))
            .clone()
    };
    let pod_sc = &pod.spec["securityContext"];
    let sc = &pod.ssogate["securityContext"];
    let pick = |k: &str| sc[k].as_u64().or_else(|| pod_sc[k].as_u64());
    let fs_group = pod_sc["fsGroup"]
        .as_u64()
        .map(|g| u32::try_from(g).unwrap());
    let mut layout = Layout {
        what: pod.what.clone(),
        config: config_path(&strings(&pod.ssogate["args"]), &pod.what),
        mounts: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
        env: BTreeMap::new(),
        user: (
            pick("runAsUser").unwrap_or(0),
            pick("runAsGroup").unwrap_or(0),
        ),
    };
    for m in pod.ssogate["volumeMounts"].as_array().unwrap() {
        assert!(
            m["subPath"].is_null(),
            "{}: subPath is not laid out by this test",
            pod.what
        );
        let at = m["mountPath"].as_str().unwrap().to_string();
        let v = volume(pod.spec, m["name"].as_str().unwrap());
        layout.mounts.push(at.clone());
        let (entries, mode): (BTreeMap<String, Vec<u8>>, u64) =
            if let Some(cm) = v["configMap"]["name"].as_str() {
                let data = find(docs, "ConfigMap", cm)["data"].as_object().unwrap();
                (
                    data.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
                        .collect(),
                    v["configMap"]["defaultMode"].as_u64().unwrap_or(0o644),
                )
            } else if let Some(s) = v["secret"]["secretName"].as_str() {
                (
                    secret(s),
                    v["secret"]["defaultMode"].as_u64().unwrap_or(0o644),
                )
            } else if v["emptyDir"].is_object() {
                layout.dirs.push((at, 0o777));
                continue;
            } else {
                panic!(
                    "{}: volume {} is not laid out by this test",
                    pod.what, v["name"]
                );
            };
        assert!(v["configMap"]["items"].is_null() && v["secret"]["items"].is_null());
        layout.dirs.push((at.clone(), 0o755));
        for (k, bytes) in entries {
            layout.files.push(LaidFile {
                path: format!("{at}/{k}"),
                bytes,
                mode: u32::try_from(mode).unwrap(),
                group: fs_group,
            });
        }
    }
    for e in pod.ssogate["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let values = secret(r["name"].as_str().unwrap());
            String::from_utf8(values[r["key"].as_str().unwrap()].clone()).unwrap()
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            find(docs, "ConfigMap", r["name"].as_str().unwrap())["data"][r["key"].as_str().unwrap()]
                .as_str()
                .unwrap()
                .to_string()
        } else {
            panic!("{}: env {name} is not laid out by this test", pod.what);
        };
        layout.env.insert(name, value);
    }
    layout
}

/// How the compose ssogate container sees its files and environment.
fn compose_layout(service: &Value) -> Layout {
    let mut layout = Layout {
        what: "compose service ssogate".into(),
        config: config_path(&dockerfile_cmd(), "Dockerfile CMD"),
        mounts: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
        env: compose_env(service),
        user: (0, 0),
    };
    if let Some(user) = service["user"].as_str() {
        let (u, g) = user.split_once(':').unwrap_or((user, "0"));
        layout.user = (u.parse().unwrap(), g.parse().unwrap());
    }
    for (src, dst) in compose_binds(service) {
        use std::os::unix::fs::PermissionsExt as _;
        assert!(
            src.is_file(),
            "{}: only file mounts are laid out",
            src.display()
        );
        layout
            .mounts
            .push(dst.rsplit_once('/').unwrap().0.to_string());
        layout.files.push(LaidFile {
            path: dst,
            bytes: std::fs::read(&src).unwrap(),
            mode: std::fs::metadata(&src).unwrap().permissions().mode() & 0o777,
            group: None,
        });
    }
    for t in strings(&service["tmpfs"]) {
        layout.mounts.push(t.clone());
        layout.dirs.push((t, 0o1777));
    }
    layout.mounts.sort();
    layout.mounts.dedup();
    layout
}

/// The image as built, with the repository's example config where the CMD reads it.
fn example_layout() -> Layout {
    let config = config_path(&dockerfile_cmd(), "Dockerfile CMD");
    let dir = config.rsplit_once('/').unwrap().0.to_string();
    Layout {
        what: "config/ssogate.toml".into(),
        mounts: vec![dir.clone()],
        dirs: Vec::new(),
        files: vec![
            LaidFile {
                path: config.clone(),
                bytes: read("config/ssogate.toml").into_bytes(),
                mode: 0o644,
                group: None,
            },
            LaidFile {
                path: format!("{dir}/entra-metadata.xml"),
                bytes: read("config/entra-metadata.xml").into_bytes(),
                mode: 0o644,
                group: None,
            },
        ],
        env: BTreeMap::new(),
        user: (IMAGE_UID, IMAGE_UID),
        config,
    }
}

#[test]
fn a_root_of_only_the_runtime_packages_runs_check_config_on_every_shipped_config() {
    let root = RuntimeRoot::build();
    let mut layouts = vec![example_layout()];
    for file in kubernetes_manifests() {
        let docs = yaml_docs(&file);
        for pod in ssogate_pods(&docs) {
            let mut layout = pod_layout(&docs, &pod);
            layout.what = format!("{} {}", file.display(), layout.what);
            layouts.push(layout);
        }
    }
    layouts.push(compose_layout(&compose()["ssogate"]));
    assert!(layouts.len() >= 4);
    for layout in &layouts {
        let (ok, text) = root.check_config(layout);
        assert!(
            ok,
            "{}: check-config in the runtime root failed:\n{text}",
            layout.what
        );
    }
    // The check is not blind: a secret file every user may read is refused (as it would
    // be in a pod whose Secret volume kept the default mode 0644).
    let mut loose = layouts.into_iter().nth(1).unwrap();
    for f in loose.files.iter_mut().filter(|f| f.path.ends_with(".key")) {
        f.mode = 0o644;
    }
    let (ok, text) = root.check_config(&loose);
    assert!(!ok && text.contains("readable by every user"), "{text}");
}
