//! docker-compose.yml and the Dockerfile agree with the code, and pass the
//! checkers that run without a Docker engine.
//!
//! - Each service's own `Settings::from_env` loads from exactly the
//!   environment compose gives it, and every variable compose sets is one the
//!   code reads (or a documented external one: `AWS_*` for the SDK, `OTEL_*`
//!   for OpenTelemetry, the log settings).
//! - Ports, healthcheck URLs, databases and the chain setting match the code.
//! - The binaries compose runs are built by the Dockerfile and declared by
//!   the workspace; the image runs as a non-root user with the pinned toolchain.
//! - `docker-compose config` (the Compose implementation in Debian), dclint
//!   (the Compose Specification's schema) and hadolint accept the files.
//! - The MiniStack override (`docker-compose.ministack.yml`) builds the
//!   MiniStack the local stack pins and listens where moto did.
//! - The GitHub workflow for forks is valid and runs the README's test
//!   command, and the chaos experiments against the compose stack.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use contracts::topology::{Chain, Service};
use platform::config::Env;
use platform::health::READY_PATH;
use serde_json::Value;

fn root() -> PathBuf {
    testkit::workspace_root()
}

/// docker-compose.yml as JSON, with YAML merge keys applied.
fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    let mut yaml: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    // A merged mapping may itself merge another (`x-service` merges `x-app`):
    // apply until no merge key is left.
    for _ in 0..4 {
        yaml.apply_merge().expect("merge keys");
    }
    let json = serde_json::to_value(yaml).expect("JSON-compatible");
    assert!(!json.to_string().contains("\"<<\""), "unresolved merge key");
    json
}

/// `${NAME:-default}` as compose resolves it when `NAME` is unset.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map(|(_, d)| d).unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out + rest
}

fn environment(compose: &Value, service: &str) -> BTreeMap<String, String> {
    let env = compose["services"][service]["environment"]
        .as_object()
        .unwrap_or_else(|| panic!("{service} has an environment mapping"));
    env.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), interpolate(&v))
        })
        .collect()
}

/// Set by compose, read by something other than the settings: the AWS SDK,
/// OpenTelemetry, and the log set-up in `platform::telemetry`.
fn is_external(name: &str) -> bool {
    name.starts_with("AWS_")
        || name.starts_with("OTEL_")
        || ["RUST_LOG", "LOG_FORMAT"].contains(&name)
}

/// Loads `service`'s settings from `env`; the names it asked for.
fn load_settings(
    service: Service,
    env: &BTreeMap<String, String>,
) -> (
    Result<(platform::config::CommonSettings, u16), String>,
    BTreeSet<String>,
) {
    let asked = RefCell::new(BTreeSet::new());
    let lookup = Env(|name: &str| {
        asked.borrow_mut().insert(name.to_string());
        env.get(name).cloned()
    });
    let loaded = match service {
        Service::Order => {
            order::startup::Settings::from_env(&lookup).map(|s| (s.common, s.edge.admin_port))
        }
        Service::Invoice => {
            invoice::startup::Settings::from_env(&lookup).map(|s| (s.common, s.edge.admin_port))
        }
        Service::Notification => notification::startup::Settings::from_env(&lookup)
            .map(|s| (s.common, s.edge.admin_port)),
    };
    (loaded.map_err(|e| e.to_string()), asked.into_inner())
}

fn default_port(service: Service) -> u16 {
    match service {
        Service::Order => order::startup::DEFAULT_PORT,
        Service::Invoice => invoice::startup::DEFAULT_PORT,
        Service::Notification => notification::startup::DEFAULT_PORT,
    }
}

#[test]
fn each_service_loads_its_settings_from_compose_and_compose_sets_nothing_it_does_not_read() {
    let compose = compose();
    for service in Service::ALL {
        let env = environment(&compose, service.name());
        let (loaded, asked) = load_settings(service, &env);
        if let Err(e) = loaded {
            panic!(
                "{} does not start with compose's environment: {e}",
                service.name()
            );
        }
        for name in env.keys() {
            assert!(
                asked.contains(name) || is_external(name),
                "compose sets {name} for {}, which nothing reads",
                service.name()
            );
        }
        assert_eq!(
            env.get("OTEL_SERVICE_NAME").map(String::as_str),
            Some(service.source()),
            "traces are named after the service"
        );
    }
}

#[test]
fn the_provisioner_and_every_service_talk_to_the_emulator_on_the_same_chain() {
    let compose = compose();
    let provision = environment(&compose, "provision");
    for name in provision.keys() {
        assert!(
            name.starts_with("AWS_") || name == Chain::VARIABLE,
            "compose sets {name} for provision, which it does not read"
        );
    }
    let moto_port = compose["services"]["moto"]["ports"][0]
        .as_str()
        .and_then(|p| p.rsplit(':').next())
        .expect("moto publishes its port");
    for service in ["provision", "order", "invoice", "notification"] {
        let env = environment(&compose, service);
        assert_eq!(
            env.get("AWS_ENDPOINT_URL").map(String::as_str),
            Some(format!("http://moto:{moto_port}").as_str()),
            "{service}"
        );
        assert!(env.contains_key("AWS_REGION"), "{service}");
        assert_eq!(
            env.get(Chain::VARIABLE),
            provision.get(Chain::VARIABLE),
            "{service} and provision agree on the chain"
        );
        assert!(env[Chain::VARIABLE].parse::<Chain>().is_ok(), "{service}");
    }
    assert_eq!(
        compose["services"]["provision"]["depends_on"]["moto"]["condition"],
        "service_healthy"
    );
}

#[test]
fn the_emulator_runs_the_launcher_of_the_local_stack_on_the_pinned_moto() {
    let compose = compose();
    let moto = &compose["services"]["moto"];
    let volume = moto["volumes"][0]
        .as_str()
        .expect("the launcher is mounted");
    let mut parts = volume.split(':');
    let (source, target) = (parts.next().expect("source"), parts.next().expect("target"));
    let launcher = testkit::emulator::moto_launcher();
    assert_eq!(
        root()
            .join(source.trim_start_matches("./"))
            .canonicalize()
            .ok(),
        launcher.parent().and_then(|d| d.canonicalize().ok()),
        "compose mounts the launcher's folder"
    );
    let entrypoint: Vec<&str> = moto["entrypoint"]
        .as_array()
        .expect("an entrypoint")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let file = launcher.file_name().and_then(|f| f.to_str()).expect("name");
    assert!(
        entrypoint.contains(&format!("{target}/{file}").as_str()),
        "{entrypoint:?}"
    );
    // The image's moto is the version the launcher's fixes were written for.
    let pinned = std::fs::read_to_string(&launcher).expect("launcher");
    let image = moto["image"].as_str().expect("image");
    let version = image.rsplit(':').next().expect("a tag");
    assert!(
        pinned.contains(&format!("PINNED_VERSION = \"{version}\"")),
        "{image} is not the moto the launcher pins"
    );
}

#[test]
fn ports_health_checks_and_databases_match_the_code() {
    let compose = compose();
    for service in Service::ALL {
        let name = service.name();
        let spec = &compose["services"][name];
        let env = environment(&compose, name);
        let (loaded, _) = load_settings(service, &env);
        let (settings, admin_port) = loaded.expect("settings load");
        assert_eq!(
            settings.port,
            default_port(service),
            "{name} keeps its port"
        );
        assert_eq!(
            spec["ports"],
            serde_json::json!([
                format!("127.0.0.1:{0}:{0}", settings.port),
                format!("127.0.0.1:{0}:{0}", admin_port)
            ]),
            "{name} publishes its API and admin ports on the host's loopback"
        );
        assert_eq!(
            spec["healthcheck"]["test"],
            serde_json::json!([
                "CMD",
                "healthcheck",
                format!("http://127.0.0.1:{admin_port}{READY_PATH}")
            ]),
            "{name} is healthy when its readiness, on the admin port, says so"
        );
        let grace = spec["stop_grace_period"]
            .as_str()
            .and_then(|s| s.strip_suffix('s'))
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .expect("a stop_grace_period in seconds");
        assert!(
            grace > settings.shutdown_timeout,
            "{name}: compose must not SIGKILL before the graceful stop ends"
        );

        // Its own database, with the role and password that database was created with.
        let db = format!("{name}-db");
        let db_env = environment(&compose, &db);
        let expected = format!(
            "postgres://{user}:{password}@{db}:5432/{database}",
            user = db_env["POSTGRES_USER"],
            password = db_env["POSTGRES_PASSWORD"],
            database = db_env["POSTGRES_DB"],
        );
        assert_eq!(env["DATABASE_URL"], expected, "{name}");
        let depends = &spec["depends_on"];
        assert_eq!(depends[&db]["condition"], "service_healthy", "{name}");
        assert_eq!(depends["moto"]["condition"], "service_healthy", "{name}");
        assert_eq!(
            depends["provision"]["condition"], "service_completed_successfully",
            "{name}"
        );
    }
}

/// The `--bin` names of the Dockerfile's `RUN <command>` lines.
fn dockerfile_bins(joined: &str, command: &str) -> BTreeSet<String> {
    joined
        .lines()
        .filter(|l| l.starts_with(command))
        .flat_map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[0] == "--bin")
                .map(|w| w[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `--bin` names of the Dockerfile's build, and the files its runtime stage copies.
fn dockerfile() -> (String, BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let joined = text.replace("\\\n", " ");
    let built = dockerfile_bins(&joined, "RUN cargo build");
    assert_eq!(
        dockerfile_bins(&joined, "RUN cargo chef cook"),
        built,
        "the cached dependency layer is cooked for exactly the binaries the image builds"
    );
    let copied = joined
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("/build/target/release/"))
        .map(String::from)
        .collect();
    (text, built, copied)
}

/// Every `[[bin]]` of the workspace, from `cargo metadata`.
fn workspace_bins() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["kind"] == serde_json::json!(["bin"]))
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn the_image_builds_the_binaries_compose_runs_and_runs_them_unprivileged() {
    let compose = compose();
    let (text, built, copied) = dockerfile();
    let declared = workspace_bins();
    assert_eq!(
        built, copied,
        "the runtime stage copies what the build stage builds"
    );
    for bin in &built {
        assert!(
            declared.contains(bin),
            "the workspace declares no binary {bin}"
        );
    }
    let services = compose["services"].as_object().expect("services");
    let mut run = BTreeSet::new();
    for (name, spec) in services.iter().filter(|(_, s)| s.get("build").is_some()) {
        assert_eq!(spec["image"], "message-driven:local", "{name}");
        run.insert(spec["command"][0].as_str().expect("a command").to_string());
        if let Some(probe) = spec["healthcheck"]["test"][1].as_str() {
            run.insert(probe.to_string());
        }
    }
    for service in Service::ALL {
        let bin = format!("{}-service", service.name());
        assert!(run.contains(&bin), "compose runs no {bin}");
    }
    for bin in &run {
        assert!(
            built.contains(bin),
            "compose runs {bin}, which the image does not build"
        );
    }

    // The toolchain of the image is the one rust-toolchain.toml pins.
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).expect("toolchain");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .map(|c| c.trim_matches('"'))
        .expect("a channel");
    assert!(
        text.contains(&format!("ARG RUST_VERSION={channel}\n")),
        "the Dockerfile builds with Rust {channel}"
    );
    // The runtime stage: no Rust image, a numeric non-root user.
    let runtime = &text[text.rfind("\nFROM ").expect("stages")..];
    assert!(!runtime.contains("FROM rust"), "{runtime}");
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage names its user");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "runs as a non-root uid, not {user}"
    );
}

fn tool(path: &Path, hint: &str) -> Command {
    assert!(path.exists(), "{} is missing: {hint}", path.display());
    let mut command = Command::new(path);
    command.current_dir(root());
    command
}

fn assert_passes(mut command: Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not run: {e}"));
    assert!(
        out.status.success(),
        "{what} refused it:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn on_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(program))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let mut command = tool(
        &on_path("docker-compose"),
        "run scripts/setup.sh (it installs Debian's docker-compose)",
    );
    command.args(["-f", "docker-compose.yml", "config", "--quiet"]);
    assert_passes(command, "docker-compose config");
}

#[test]
fn docker_compose_accepts_the_compose_file_with_the_ministack_override() {
    let mut command = tool(
        &on_path("docker-compose"),
        "run scripts/setup.sh (it installs Debian's docker-compose)",
    );
    command.args([
        "-f",
        "docker-compose.yml",
        "-f",
        MINISTACK_OVERRIDE,
        "config",
        "--quiet",
    ]);
    assert_passes(command, "docker-compose config");
}

/// dclint on `file`: errors (the schema, unbound ports, ...) and warnings
/// fail, except the rules about order and style; `name` is left out because
/// docker-compose 1.29 refuses it.
fn dclint(file: &str) -> Command {
    let mut command = tool(
        &root().join(".tools/node_modules/.bin/dclint"),
        "run scripts/setup.sh",
    );
    command.args([file, "--color", "false", "--max-warnings", "0"]);
    for rule in [
        "require-project-name-field",
        "require-quotes-in-ports",
        "service-dependencies-alphabetical-order",
        "service-keys-order",
        "service-ports-alphabetical-order",
        "services-alphabetical-order",
        "top-level-properties-order",
    ] {
        command.args(["--disable-rule", rule]);
    }
    command
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    assert_passes(dclint("docker-compose.yml"), "dclint");
}

#[test]
fn the_ministack_override_follows_the_compose_specification() {
    assert_passes(dclint(MINISTACK_OVERRIDE), "dclint");
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let mut command = tool(&root().join(".venv/bin/hadolint"), "run scripts/setup.sh");
    command.args(["--no-color", "Dockerfile"]);
    assert_passes(command, "hadolint");
}

#[test]
fn hadolint_finds_nothing_in_the_ministack_dockerfile() {
    let mut command = tool(&root().join(".venv/bin/hadolint"), "run scripts/setup.sh");
    command.args(["--no-color", MINISTACK_DOCKERFILE]);
    assert_passes(command, "hadolint");
}

/// The file that runs MiniStack in the emulator's service instead of moto.
const MINISTACK_OVERRIDE: &str = "docker-compose.ministack.yml";
const MINISTACK_DOCKERFILE: &str = "infra/emulator/ministack.Dockerfile";

#[test]
fn the_ministack_override_builds_the_pinned_ministack_where_moto_listened() {
    let text = std::fs::read_to_string(root().join(MINISTACK_OVERRIDE)).expect("override");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    let over = serde_json::to_value(yaml).expect("JSON-compatible");
    let services = over["services"].as_object().expect("services");
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        ["moto"],
        "it replaces the emulator's service and nothing else"
    );
    let emulator = &over["services"]["moto"];
    // The version the local stack installs (scripts/setup.sh), in the build
    // argument, the image's tag and the Dockerfile's default.
    let setup = std::fs::read_to_string(root().join("scripts/setup.sh")).expect("setup.sh");
    let pinned = setup
        .lines()
        .find_map(|l| l.strip_prefix("MINISTACK_VERSION="))
        .map(|v| v.trim_matches('"'))
        .expect("setup.sh pins MiniStack");
    assert_eq!(emulator["build"]["args"]["MINISTACK_VERSION"], pinned);
    assert!(
        emulator["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(&format!(":{pinned}"))),
        "{}",
        emulator["image"]
    );
    let dockerfile_path = Path::new(emulator["build"]["context"].as_str().expect("context")).join(
        emulator["build"]["dockerfile"]
            .as_str()
            .expect("dockerfile"),
    );
    assert_eq!(dockerfile_path, Path::new(MINISTACK_DOCKERFILE));
    let dockerfile = std::fs::read_to_string(root().join(MINISTACK_DOCKERFILE)).expect("file");
    assert!(
        dockerfile.contains(&format!("ARG MINISTACK_VERSION={pinned}\n")),
        "the Dockerfile's default is the pinned version"
    );
    // It listens where moto did, so every AWS_ENDPOINT_URL stays right, and
    // is healthy when MiniStack's health path answers there.
    let base = compose();
    let moto_port = base["services"]["moto"]["ports"][0]
        .as_str()
        .and_then(|p| p.rsplit(':').next())
        .expect("moto publishes its port");
    assert!(
        dockerfile.contains(&format!("GATEWAY_PORT={moto_port}")),
        "MiniStack listens on moto's port {moto_port}"
    );
    let probe = emulator["healthcheck"]["test"].to_string();
    assert!(
        probe.contains(&format!("127.0.0.1:{moto_port}/_ministack/health")),
        "{probe}"
    );
}

#[test]
fn the_github_workflow_is_valid_and_runs_the_tests_and_the_chaos_experiments() {
    let workflow = ".github/workflows/ci.yml";
    let mut command = tool(
        &root().join(".venv/bin/check-jsonschema"),
        "run scripts/setup.sh",
    );
    command.args(["--builtin-schema", "vendor.github-workflows", workflow]);
    assert_passes(command, "check-jsonschema");
    let text = std::fs::read_to_string(root().join(workflow)).expect("workflow");
    let parsed: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let jobs = serde_json::to_value(&parsed["jobs"]).expect("jobs");
    let runs = |job: &str| -> Vec<(String, String)> {
        jobs[job]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("job {job}"))
            .iter()
            .filter_map(|s| {
                let run = s["run"].as_str()?.to_string();
                Some((run, s["if"].as_str().unwrap_or_default().to_string()))
            })
            .collect()
    };
    // The README's test command, which is also what .ci/run runs.
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(ci.contains("scripts/test.sh"));
    assert!(runs("test").iter().any(|(run, _)| run == "scripts/test.sh"));
    let chaos = runs("compose-chaos");
    assert!(
        chaos
            .iter()
            .any(|(run, _)| run.starts_with("docker compose up --wait --build"))
    );
    for experiment in [
        "invoice-down",
        "invoice-crash-loop",
        "notification-hang",
        "emulator-pause",
        "invoice-db-down",
        "rolling-restart",
    ] {
        assert!(
            chaos.iter().any(|(run, _)| run.contains(experiment)
                && run.contains("-p chaos")
                && run.contains("--target compose --short")),
            "{experiment}"
        );
    }
    assert!(
        chaos
            .iter()
            .any(|(run, when)| run == "docker compose down -v" && when == "always()")
    );
    assert!(text.contains("path: results/"), "the results are uploaded");
}

/// Answers each connection with `status`, after reading the request's head.
fn canned_server(status: &'static str) -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        }
    });
    Ok(port)
}

#[test]
fn the_container_probe_passes_on_2xx_and_fails_otherwise() -> anyhow::Result<()> {
    let probe = harness::stack::bin_dir()?.join("healthcheck");
    anyhow::ensure!(
        probe.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        probe.display()
    );
    let ready = canned_server("200 OK")?;
    let not_ready = canned_server("503 Service Unavailable")?;
    let closed = testkit::free_port()?;
    let run = |url: String| -> std::io::Result<(Option<i32>, String)> {
        let out = Command::new(&probe).arg(url).output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, stderr) = run(format!("http://127.0.0.1:{ready}{READY_PATH}"))?;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(format!("http://127.0.0.1:{not_ready}{READY_PATH}"))?;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    let (code, stderr) = run(format!("http://127.0.0.1:{closed}{READY_PATH}"))?;
    assert_eq!(code, Some(1), "{stderr}");
    // Without a URL it asks this host's ADMIN_PORT for readiness.
    let by_port = Command::new(&probe)
        .env("ADMIN_PORT", ready.to_string())
        .output()?;
    assert!(
        by_port.status.success(),
        "{}",
        String::from_utf8_lossy(&by_port.stderr)
    );
    Ok(())
}

/// The development issuer is where the services look for keys: its `--url`
/// is their `OIDC_ISSUER`, it listens on that URL's port, it registers the
/// order service's client, and the services start only once it is healthy.
#[test]
fn the_services_verify_tokens_of_the_compose_issuer() {
    let compose = compose();
    let issuer = &compose["services"]["issuer"];
    let command: Vec<&str> = issuer["command"]
        .as_array()
        .expect("a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[0], "dev-issuer");
    let arg = |name: &str| {
        command
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].to_string())
            .unwrap_or_else(|| panic!("dev-issuer is given {name}"))
    };
    let url = arg("--url");
    let port = url.rsplit(':').next().expect("a port in the issuer URL");
    assert!(
        arg("--listen").ends_with(&format!(":{port}")),
        "{command:?}"
    );
    assert_eq!(
        issuer["healthcheck"]["test"][1], "healthcheck",
        "the image's probe checks the issuer"
    );
    let env = environment(&compose, "issuer");
    assert_eq!(
        env.get("OAUTH_CLIENT_ID").map(String::as_str),
        Some(harness::issuer::ORDER_SERVICE_CLIENT)
    );
    assert!(
        env.get("OAUTH_CLIENT_SECRET")
            .is_some_and(|s| !s.is_empty())
    );
    for service in Service::ALL {
        let name = service.name();
        let service_env = environment(&compose, name);
        assert_eq!(service_env.get("OIDC_ISSUER"), Some(&url), "{name}");
        assert_eq!(
            service_env.get("JWT_AUDIENCE").map(String::as_str),
            Some(harness::issuer::AUDIENCE),
            "{name}"
        );
        assert_eq!(
            compose["services"][name]["depends_on"]["issuer"]["condition"], "service_healthy",
            "{name}"
        );
    }
}
