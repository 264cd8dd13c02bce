//! Command-line parsing and the four commands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions, build};

use waygate_config::NsName;
use waygate_config::explain::{ExplainRequest, explain};

#[derive(Parser)]
#[command(
    name = "waygate",
    version,
    about = "A Gateway API and Istio gateway and waypoint built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Gateways in a file or folder of Kubernetes YAML, reloading it when it changes.
    Run {
        /// A YAML/JSON file or a folder of them.
        #[arg(long)]
        config: PathBuf,
        /// The address every listener binds (each on its own Gateway port).
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
        /// The admin server address.
        #[arg(long, default_value = "127.0.0.1:15000")]
        admin: SocketAddr,
        /// Serve only this Gateway (NS/NAME); repeatable. Default: every Istio-class Gateway.
        #[arg(long = "gateway", value_parser = parse_ns_name)]
        gateways: Vec<NsName>,
        /// Log one line per request (target `waygate::access`) to stderr.
        #[arg(long)]
        access_log: bool,
        /// The mesh identity's certificate (PEM; URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>).
        #[arg(long, requires_all = ["identity_key", "trust_bundle"])]
        identity_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "identity_cert")]
        identity_key: Option<PathBuf>,
        /// The CA bundle mesh peers must chain to (PEM).
        #[arg(long, requires = "identity_cert")]
        trust_bundle: Option<PathBuf>,
        /// The mesh trust domain.
        #[arg(long, default_value = waygate::mesh::identity::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// The DNS server (IP:port) that resolves ServiceEntry hosts with `resolution: DNS`;
        /// default: the system's resolvers (/etc/resolv.conf).
        #[arg(long)]
        dns_server: Option<SocketAddr>,
    },
    /// A development CA for mesh identities (demos and tests, not production).
    DevCa {
        #[command(subcommand)]
        command: DevCaCommand,
    },
    /// Waypoints: print the YAML of one.
    Waypoint {
        #[command(subcommand)]
        command: WaypointCommand,
    },
    /// Parse and compile without serving: print every error and every object's conditions.
    Check {
        /// A YAML/JSON file or a folder of them.
        #[arg(long)]
        config: PathBuf,
        /// Print the compiled Snapshot as JSON.
        #[arg(long)]
        dump: bool,
        /// Compile only this Gateway (NS/NAME); repeatable.
        #[arg(long = "gateway", value_parser = parse_ns_name)]
        gateways: Vec<NsName>,
    },
    /// Explain how a request is routed: the listener, route, rule and match that win, and why others lose.
    Explain {
        /// A YAML/JSON file or a folder of them.
        #[arg(long)]
        config: PathBuf,
        /// NS/GATEWAY/LISTENER the request arrives on.
        #[arg(long)]
        listener: String,
        /// The request, e.g. 'GET http://shop.example.com/api/items'.
        request: String,
        /// A request header 'name: value'; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
    },
    /// Start built-in echo backends and a gateway on 127.0.0.1:8080 serving examples/demo.
    Demo {
        /// Admin server address.
        #[arg(long, default_value = "127.0.0.1:15000")]
        admin: SocketAddr,
    },
}

#[derive(Subcommand)]
enum WaypointCommand {
    /// Print a waypoint Gateway (and the Namespace label enrolling it) as YAML.
    Generate {
        /// Namespace of the waypoint.
        #[arg(long)]
        namespace: String,
        /// Name of the waypoint.
        #[arg(long)]
        name: String,
        /// What it accepts: service, workload, all or none.
        #[arg(long = "for", default_value = "service")]
        accepts: String,
        /// Also print the Namespace labelled istio.io/use-waypoint.
        #[arg(long)]
        enroll_namespace: bool,
    },
}

#[derive(Subcommand)]
enum DevCaCommand {
    /// Create a CA (ca.crt, ca.key) in a folder.
    Init {
        /// The folder.
        #[arg(long)]
        dir: PathBuf,
        /// The trust domain its identities live in.
        #[arg(long, default_value = waygate::mesh::identity::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Replace a CA already there.
        #[arg(long)]
        force: bool,
    },
    /// Mint a workload identity spiffe://<trust-domain>/ns/<ns>/sa/<sa> into <ns>.<sa>.crt/.key.
    Issue {
        /// The CA folder.
        #[arg(long)]
        dir: PathBuf,
        /// Namespace.
        #[arg(long)]
        ns: String,
        /// Service account.
        #[arg(long)]
        sa: String,
        /// The trust domain.
        #[arg(long, default_value = waygate::mesh::identity::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
}

fn dev_ca(command: DevCaCommand) -> anyhow::Result<ExitCode> {
    use waygate::mesh::dev_ca;
    match command {
        DevCaCommand::Init {
            dir,
            trust_domain,
            force,
        } => {
            let cert = dev_ca::init(&dir, &trust_domain, force)?;
            println!("CA for trust domain {trust_domain}: {}", cert.display());
        }
        DevCaCommand::Issue {
            dir,
            ns,
            sa,
            trust_domain,
        } => {
            let (cert, key) = dev_ca::issue(&dir, &trust_domain, &ns, &sa)?;
            println!(
                "spiffe://{trust_domain}/ns/{ns}/sa/{sa}\n  --identity-cert {} --identity-key {} --trust-bundle {}",
                cert.display(),
                key.display(),
                dir.join(dev_ca::CA_CERT).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_ns_name(s: &str) -> Result<NsName, String> {
    NsName::parse(s).ok_or_else(|| format!("{s:?} is not NAMESPACE/NAME"))
}

/// Pingora's proxy logs every client that hangs up mid-request at ERROR; our own
/// `fail_to_proxy` logs the failures that matter (upstream ones) instead.
/// The access log is off unless asked for.
const DEFAULT_LOG_FILTER: &str = "info,pingora_proxy=off,pingora_core=warn";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let access = matches!(
        cli.command,
        Command::Run {
            access_log: true,
            ..
        }
    );
    let default_filter = format!(
        "{DEFAULT_LOG_FILTER},{}={}",
        waygate::proxy_app::ACCESS_LOG_TARGET,
        if access { "info" } else { "off" }
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Check {
            config,
            dump,
            gateways,
        } => check(config, dump, gateways),
        Command::Explain {
            config,
            listener,
            request,
            headers,
        } => explain_cmd(config, listener, request, headers),
        Command::Run {
            config,
            bind,
            admin,
            gateways,
            access_log: _,
            identity_cert,
            identity_key,
            trust_bundle,
            trust_domain,
            dns_server,
        } => serve(
            GatewayOptions {
                source: ConfigSource::Path(config),
                bind: BindPlan::Address(bind),
                admin: Some(admin),
                gateways,
                watch: true,
                dns_server,
                identity: identity_cert.zip(identity_key).zip(trust_bundle).map(
                    |((cert, key), trust_bundle)| waygate::mesh::IdentityFiles {
                        cert,
                        key,
                        trust_bundle,
                        trust_domain,
                    },
                ),
            },
            None,
        ),
        Command::DevCa { command } => dev_ca(command),
        Command::Waypoint {
            command:
                WaypointCommand::Generate {
                    namespace,
                    name,
                    accepts,
                    enroll_namespace,
                },
        } => waygate::mesh::waypoint::generate(&namespace, &name, &accepts, enroll_namespace)
            .map(|yaml| {
                print!("{yaml}");
                ExitCode::SUCCESS
            })
            .map_err(|e| anyhow::anyhow!(e)),
        Command::Demo { admin } => demo(admin),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(config: PathBuf, dump: bool, gateways: Vec<NsName>) -> anyhow::Result<ExitCode> {
    // Compile what loads, so one run shows both the files that do not parse and the status of
    // every object that did.
    let (resources, load_errors) = waygate_config::load::load_path_partial(&config);
    let options = waygate_config::CompileOptions { gateways };
    let (snapshot, report) = waygate_config::compile(&resources, &options);
    for e in &load_errors {
        println!("error: {e}");
    }
    if dump && load_errors.is_empty() {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
        return Ok(ExitCode::SUCCESS);
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for o in &report.objects {
        let who = if o.namespace.is_empty() {
            o.name.clone()
        } else {
            format!("{}/{}", o.namespace, o.name)
        };
        println!("{} {who}", o.kind);
        for c in &o.conditions.0 {
            println!("  {}={} {}: {}", c.kind, c.status, c.reason, c.message);
        }
        for l in &o.listeners {
            println!(
                "  listener {} (attachedRoutes {})",
                l.name, l.attached_routes
            );
            for c in &l.conditions.0 {
                println!("    {}={} {}: {}", c.kind, c.status, c.reason, c.message);
            }
        }
        for p in &o.parents {
            let ns = p.parent_ref.namespace.as_deref().unwrap_or(&o.namespace);
            println!(
                "  parent {}/{}{}",
                ns,
                p.parent_ref.name,
                p.parent_ref
                    .section_name
                    .as_ref()
                    .map(|s| format!(" section {s}"))
                    .unwrap_or_default()
            );
            for c in &p.conditions.0 {
                println!("    {}={} {}: {}", c.kind, c.status, c.reason, c.message);
            }
        }
    }
    let problems = report.problems();
    if problems.is_empty() && load_errors.is_empty() {
        println!("ok: no errors");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("error: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn explain_cmd(
    config: PathBuf,
    listener: String,
    request: String,
    headers: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let mut parts = listener.splitn(3, '/');
    let (Some(ns), Some(gw), Some(l)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--listener {listener:?} is not NAMESPACE/GATEWAY/LISTENER");
    };
    let mut map = http::HeaderMap::new();
    for h in headers {
        let (n, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not 'name: value'"))?;
        map.append(
            http::HeaderName::from_bytes(n.trim().as_bytes())?,
            http::HeaderValue::from_str(v.trim())?,
        );
    }
    let (snapshot, _) =
        build(&ConfigSource::Path(config), &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let req = ExplainRequest::parse(NsName::new(ns, gw), l.to_string(), &request, map)
        .map_err(|e| anyhow::anyhow!(e))?;
    print!("{}", explain(&snapshot, &req));
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("WAYGATE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        b.worker_threads(n.max(1));
    }
    Ok(b.enable_all().build()?)
}

fn serve(options: GatewayOptions, banner: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let gw = Gateway::start(options).await?;
        if let Some(a) = gw.admin_addr() {
            tracing::info!("admin server on http://{a}");
        }
        if let Some(b) = banner {
            println!("{b}");
        }
        tokio::signal::ctrl_c().await?;
        drop(gw);
        Ok(ExitCode::SUCCESS)
    })
}

const DEMO_FILES: [(&str, &str); 3] = [
    (
        "examples/demo/gateway.yaml",
        include_str!("../../examples/demo/gateway.yaml"),
    ),
    (
        "examples/demo/routes.yaml",
        include_str!("../../examples/demo/routes.yaml"),
    ),
    (
        "examples/demo/services.yaml",
        include_str!("../../examples/demo/services.yaml"),
    ),
];

fn demo(admin: SocketAddr) -> anyhow::Result<ExitCode> {
    use waygate_conformance::echo::{EchoIdentity, EchoServer};
    let text = DEMO_FILES
        .iter()
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join("\n---\n");
    runtime()?.block_on(async move {
        let v1 = EchoServer::start(
            "127.0.0.1:18181".parse()?,
            EchoIdentity::new("demo", "echo-v1", "echo-v1-demo"),
        )
        .await
        .context("start echo-v1 on 127.0.0.1:18181")?;
        let v2 = EchoServer::start(
            "127.0.0.1:18182".parse()?,
            EchoIdentity::new("demo", "echo-v2", "echo-v2-demo"),
        )
        .await
        .context("start echo-v2 on 127.0.0.1:18182")?;
        let options = GatewayOptions {
            source: ConfigSource::Inline {
                name: "examples/demo".into(),
                text,
            },
            bind: BindPlan::Address("127.0.0.1".parse()?),
            admin: Some(admin),
            gateways: vec![],
            watch: false,
            dns_server: None,
            identity: None,
        };
        let gw = Gateway::start(options).await?;
        println!("{}", demo_banner(admin));
        tokio::signal::ctrl_c().await?;
        drop(gw);
        drop((v1, v2));
        Ok(ExitCode::SUCCESS)
    })
}

fn demo_banner(admin: SocketAddr) -> String {
    format!(
        r#"waygate demo: gateway on http://127.0.0.1:8080, echo backends on :18181 (v1) and :18182 (v2)

Try:
  # host routing with a 90/10 split: run it a few times and watch "pod"
  curl -s -H 'Host: shop.example.com' http://127.0.0.1:8080/ | grep pod
  for i in $(seq 100); do curl -s -H 'Host: shop.example.com' http://127.0.0.1:8080/; done | grep -c echo-v2
  # header match sends you to the canary
  curl -s -H 'Host: shop.example.com' -H 'x-canary: true' http://127.0.0.1:8080/ | grep pod
  # path prefix + request header modifier (see "X-Route" in the echoed headers)
  curl -s -H 'Host: shop.example.com' http://127.0.0.1:8080/api/items
  # redirect
  curl -si -H 'Host: old-shop.example.com' http://127.0.0.1:8080/cart | grep -i location
  # nothing matches: 404
  curl -si -H 'Host: nowhere.example.com' http://127.0.0.1:8080/ | head -1
  # why did (or didn't) it match?
  curl -s 'http://{admin}/explain?gateway=demo/gateway&listener=http&request=GET+http://shop.example.com/api/x'
  # status and the compiled config
  curl -s http://{admin}/status
  curl -s http://{admin}/config_dump

Ctrl-C to stop."#
    )
}
