//! The config file, `$PAYSTREAMS_HOME/config.toml`: the node's URL, the chain dialect, the
//! keystore, the default identity and the listen addresses of the local services (node,
//! dashboard, gate, agent), so a non-default setup needs no flags.
//!
//! Precedence: flags > environment variables > the file > built-in defaults. The file's values
//! become the defaults of the command line before it is parsed, so clap applies the order
//! itself, and [`Sources`] records where each effective value came from (`config show`). A node
//! address set in the file (`node_rpc_addr`) is also where the other commands reach the node
//! when the file sets no `rpc`: a non-default port is written once.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{CommandFactory as _, FromArgMatches as _, Subcommand, parser::ValueSource};
use paystreams_client::keystore::default_home;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Cli,
    output::{CliError, CmdResult, CommonArgs, Ctx, table},
};

/// Largest config file read (it holds a handful of settings).
const CONFIG_MAX_BYTES: u64 = 64 * 1024;

/// The settings the file may hold; every one is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The node's JSON-RPC URL (`--rpc`).
    pub rpc: Option<String>,
    /// What answers at `rpc`: "paystreams" or "lez" (`--chain`).
    pub chain: Option<String>,
    /// Keystore directory (`--keystore`).
    pub keystore: Option<PathBuf>,
    /// Default identity: the key used when `--from` / `--owner` is not given.
    pub identity: Option<String>,
    /// Address `paystream node` serves JSON-RPC on (`node --rpc-addr`).
    pub node_rpc_addr: Option<String>,
    /// Address `paystream dashboard` listens on (`dashboard --listen`).
    pub dashboard_listen: Option<String>,
    /// Address `paystream gate` serves its API on (`gate --listen`).
    pub gate_listen: Option<String>,
    /// Address `paystream agent` serves its API on (`agent --listen`).
    pub agent_listen: Option<String>,
}

/// A listen address the file may set: its key, the subcommand and argument it is the default
/// of, the environment variable that overrides it, and the built-in default.
pub struct ListenSetting {
    pub key: &'static str,
    pub command: &'static str,
    pub arg: &'static str,
    pub env: &'static str,
    pub default: &'static str,
}

/// The env var of `paystream node --rpc-addr`.
pub const NODE_RPC_ADDR_ENV: &str = "PAYSTREAMS_NODE_RPC_ADDR";
/// The env var of `paystream dashboard --listen`.
pub const DASHBOARD_LISTEN_ENV: &str = "PAYSTREAMS_DASHBOARD_LISTEN";
/// The env var of `paystream gate --listen`.
pub const GATE_LISTEN_ENV: &str = "PAYSTREAMS_GATE_LISTEN";
/// The env var of `paystream agent --listen`.
pub const AGENT_LISTEN_ENV: &str = "PAYSTREAMS_AGENT_LISTEN";

/// Every listen address the file may set, in the order `config show` and `config init` list them.
pub const LISTEN_SETTINGS: [ListenSetting; 4] = [
    ListenSetting {
        key: "node_rpc_addr",
        command: "node",
        arg: "rpc_addr",
        env: NODE_RPC_ADDR_ENV,
        default: paystreams_node::DEFAULT_RPC_ADDR,
    },
    ListenSetting {
        key: "dashboard_listen",
        command: "dashboard",
        arg: "listen",
        env: DASHBOARD_LISTEN_ENV,
        default: paystreams_dashboard::DEFAULT_LISTEN,
    },
    ListenSetting {
        key: "gate_listen",
        command: "gate",
        arg: "listen",
        env: GATE_LISTEN_ENV,
        default: super::gate::DEFAULT_GATE_LISTEN,
    },
    ListenSetting {
        key: "agent_listen",
        command: "agent",
        arg: "listen",
        env: AGENT_LISTEN_ENV,
        default: super::agent::DEFAULT_AGENT_LISTEN,
    },
];

impl ConfigFile {
    /// The file's value of a listen setting.
    fn listen(&self, key: &str) -> Option<&String> {
        match key {
            "node_rpc_addr" => self.node_rpc_addr.as_ref(),
            "dashboard_listen" => self.dashboard_listen.as_ref(),
            "gate_listen" => self.gate_listen.as_ref(),
            "agent_listen" => self.agent_listen.as_ref(),
            _ => None,
        }
    }

    /// The node URL the other commands use when the file sets no `rpc`: the node's own address
    /// from `node_rpc_addr` (an unspecified IP, 0.0.0.0 or [::], read as loopback).
    #[must_use]
    pub fn rpc_from_node_addr(&self) -> Option<String> {
        let addr: std::net::SocketAddr = self.node_rpc_addr.as_ref()?.parse().ok()?;
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Some(format!("http://{}", std::net::SocketAddr::new(ip, addr.port())))
    }
}

/// The config file's path: `$PAYSTREAMS_HOME/config.toml`, else `<user data dir>/paystreams/config.toml`.
#[must_use]
pub fn config_path() -> PathBuf {
    default_home().join("config.toml")
}

/// Reads the file at `path`; a missing file is an empty config.
///
/// # Errors
/// Unreadable, too large, or malformed (the message names the line and the fix).
pub fn load(path: &Path) -> Result<ConfigFile, String> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(format!("cannot read the config file {}: {e}", path.display())),
    };
    if size > CONFIG_MAX_BYTES {
        return Err(format!(
            "the config file {} is {size} bytes; it holds a few settings (at most {CONFIG_MAX_BYTES})",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("the config file {} is malformed: {e}", path.display()))
}

/// Parses config text; errors name the line (1-based) and what is wrong.
///
/// # Errors
/// TOML syntax, unknown keys, wrong types, or a `chain` other than paystreams/lez.
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    let config: ConfigFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        let what = e.message().trim_end().to_owned();
        match line {
            Some(line) => format!(
                "line {line}: {what} (keys: rpc, chain, keystore, identity, node_rpc_addr, dashboard_listen, \
                 gate_listen, agent_listen; strings in quotes)"
            ),
            None => what,
        }
    })?;
    if let Some(chain) = &config.chain
        && !matches!(chain.as_str(), "paystreams" | "lez")
    {
        let line = text.lines().position(|l| l.trim_start().starts_with("chain")).map_or(0, |i| i.saturating_add(1));
        return Err(format!("line {line}: chain = {chain:?}: use \"paystreams\" or \"lez\""));
    }
    for setting in &LISTEN_SETTINGS {
        if let Some(addr) = config.listen(setting.key)
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            let line =
                text.lines().position(|l| l.trim_start().starts_with(setting.key)).map_or(0, |i| i.saturating_add(1));
            return Err(format!(
                "line {line}: {} = {addr:?} is not an address; write IP:PORT, e.g. {:?}",
                setting.key, setting.default
            ));
        }
    }
    Ok(config)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count().saturating_add(1)
}

/// Where each effective setting came from, for `config show`.
pub type Sources = BTreeMap<&'static str, (Option<String>, String)>;

/// Args that take the default identity when not given.
const IDENTITY_ARGS: [&str; 2] = ["from", "owner"];

fn leak(text: &str) -> &'static str {
    // The command line is built once per process; its defaults live as long as it does.
    Box::leak(text.to_owned().into_boxed_str())
}

/// Required `--from` / `--owner` args everywhere in the tree default to `identity`.
fn with_identity(command: clap::Command, identity: &'static str) -> clap::Command {
    command
        .mut_args(|arg| {
            if IDENTITY_ARGS.contains(&arg.get_id().as_str()) && arg.is_required_set() {
                arg.required(false).default_value(identity)
            } else {
                arg
            }
        })
        .mut_subcommands(|sub| with_identity(sub, identity))
}

/// The command line with the file's values as defaults.
fn command_with(config: &ConfigFile) -> clap::Command {
    let mut command = Cli::command();
    if let Some(rpc) = config.rpc.clone().or_else(|| config.rpc_from_node_addr()) {
        command = command.mut_arg("rpc", |a| a.default_value(leak(&rpc)));
    }
    if let Some(chain) = &config.chain {
        command = command.mut_arg("chain", |a| a.default_value(leak(chain)));
    }
    if let Some(dir) = &config.keystore {
        command = command.mut_arg("keystore", |a| a.default_value(leak(&dir.display().to_string())));
    }
    for setting in &LISTEN_SETTINGS {
        if let Some(addr) = config.listen(setting.key) {
            let addr = leak(addr);
            command = command.mut_subcommand(setting.command, |c| c.mut_arg(setting.arg, |a| a.default_value(addr)));
        }
    }
    if let Some(identity) = &config.identity {
        command = with_identity(command, leak(identity));
    }
    command
}

fn source_of(matches: &clap::ArgMatches, id: &str, env: Option<&str>, in_file: bool) -> String {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => "flag".to_owned(),
        Some(ValueSource::EnvVariable) => format!("environment ({})", env.unwrap_or("?")),
        Some(ValueSource::DefaultValue) if in_file => "config file".to_owned(),
        _ => "default".to_owned(),
    }
}

/// Parses the process's command line over the config file. A malformed file ends the process
/// with a usage error naming the line.
#[must_use]
pub fn parse_command_line() -> Cli {
    let path = config_path();
    let config = match load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}; fix it, or move it away and run `paystream config init`");
            std::process::exit(i32::from(super::output::EXIT_USAGE));
        }
    };
    let matches = command_with(&config).get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut sources = Sources::new();
    sources.insert(
        "config file",
        (Some(path.display().to_string()), if path.exists() { "present" } else { "absent" }.to_owned()),
    );
    sources.insert(
        "home",
        (
            Some(default_home().display().to_string()),
            if std::env::var_os("PAYSTREAMS_HOME").is_some() { "environment (PAYSTREAMS_HOME)" } else { "default" }
                .to_owned(),
        ),
    );
    sources.insert(
        "rpc",
        (
            Some(cli.common.rpc.clone()),
            match source_of(&matches, "rpc", Some("PAYSTREAMS_RPC"), config.rpc.is_some()) {
                source if source == "default" && config.rpc_from_node_addr().is_some() => {
                    "config file (node_rpc_addr)".to_owned()
                }
                source => source,
            },
        ),
    );
    sources.insert(
        "chain",
        (
            Some(format!("{:?}", cli.common.chain).to_lowercase()),
            source_of(&matches, "chain", Some("PAYSTREAMS_CHAIN"), config.chain.is_some()),
        ),
    );
    sources.insert(
        "keystore",
        (
            Some(
                cli.common
                    .keystore
                    .clone()
                    .unwrap_or_else(paystreams_client::default_keystore_dir)
                    .display()
                    .to_string(),
            ),
            source_of(&matches, "keystore", Some("PAYSTREAMS_KEYSTORE"), config.keystore.is_some()),
        ),
    );
    sources.insert(
        "identity",
        (
            config.identity.clone(),
            if config.identity.is_some() { "config file" } else { "none: give --from / --owner" }.to_owned(),
        ),
    );
    for setting in &LISTEN_SETTINGS {
        // The command that listens may be this one: its flag, environment and file then decide,
        // and its parsed value is the effective one.
        let running = matches.subcommand().filter(|(name, _)| *name == setting.command).map(|(_, sub)| sub);
        let from_env = std::env::var(setting.env).ok().filter(|v| !v.is_empty());
        let source =
            match (running.and_then(|sub| sub.value_source(setting.arg)), &from_env, config.listen(setting.key)) {
                (Some(ValueSource::CommandLine), _, _) => "flag".to_owned(),
                (_, Some(_), _) => format!("environment ({})", setting.env),
                (_, None, Some(_)) => "config file".to_owned(),
                (_, None, None) => "default".to_owned(),
            };
        let parsed = running
            .and_then(|sub| sub.get_raw(setting.arg))
            .and_then(|mut raw| raw.next())
            .map(|v| v.to_string_lossy().into_owned());
        let value = parsed
            .or(from_env)
            .or_else(|| config.listen(setting.key).cloned())
            .unwrap_or_else(|| setting.default.to_owned());
        sources.insert(setting.key, (Some(value), source));
    }
    cli.common.sources = sources;
    cli
}

/// The config file: create it, or show the effective settings and where each came from.
#[derive(Debug, clap::Args)]
#[command(after_help = "The file is $PAYSTREAMS_HOME/config.toml (default home: <user data dir>/paystreams). Example:

  rpc = \"http://127.0.0.1:3050\"
  chain = \"paystreams\"          # or \"lez\"
  keystore = \"/home/me/keys\"
  identity = \"dev-0\"            # used when --from / --owner is not given
  node_rpc_addr = \"127.0.0.1:3050\"   # paystream node --rpc-addr; also where commands reach the node
                                   # when rpc is not set
  dashboard_listen = \"127.0.0.1:8040\" # paystream dashboard --listen
  gate_listen = \"127.0.0.1:8042\"      # paystream gate --listen
  agent_listen = \"127.0.0.1:8060\"     # paystream agent --listen

Precedence: flags > environment (PAYSTREAMS_RPC, PAYSTREAMS_CHAIN, PAYSTREAMS_KEYSTORE,
PAYSTREAMS_NODE_RPC_ADDR, PAYSTREAMS_DASHBOARD_LISTEN, PAYSTREAMS_GATE_LISTEN,
PAYSTREAMS_AGENT_LISTEN) > this file > built-in defaults.

Examples:
  paystream config init --rpc http://127.0.0.1:3050 --identity dev-0
  paystream config show")]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write the config file with the effective settings (the flags given, the environment, the
    /// defaults), plus --identity; refuses to overwrite an existing file without --force.
    Init {
        /// Default identity to record (the key used when --from / --owner is not given).
        #[arg(long, value_name = "KEY")]
        identity: Option<String>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print every effective setting and where it came from (flag, environment, config file,
    /// default).
    Show,
}

#[must_use]
pub fn run(args: &ConfigArgs, common: &CommonArgs) -> ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = match &args.command {
        ConfigCommand::Init { identity, force } => init(&ctx, identity.as_deref(), *force),
        ConfigCommand::Show => {
            show(&ctx);
            Ok(())
        }
    };
    ctx.finish(result)
}

fn init(ctx: &Ctx, identity: Option<&str>, force: bool) -> CmdResult {
    let path = config_path();
    if path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} exists; `paystream config show` prints it, --force replaces it",
            path.display()
        )));
    }
    let sources = &ctx.common.sources;
    // Values set by a flag, the environment or the existing file are recorded; defaults are
    // written as comments, so they keep following PAYSTREAMS_HOME and new releases.
    let set = |key: &str| {
        sources.get(key).filter(|(_, source)| !source.starts_with("default")).and_then(|(value, _)| value.clone())
    };
    let file = ConfigFile {
        rpc: set("rpc"),
        chain: set("chain"),
        keystore: set("keystore").map(PathBuf::from),
        identity: identity.map(str::to_owned).or_else(|| set("identity")),
        node_rpc_addr: set("node_rpc_addr"),
        dashboard_listen: set("dashboard_listen"),
        gate_listen: set("gate_listen"),
        agent_listen: set("agent_listen"),
    };
    let body = toml::to_string(&file).map_err(|e| CliError::Failed(format!("cannot render the config: {e}")))?;
    let defaults: String =
        ["rpc", "chain", "keystore", "node_rpc_addr", "dashboard_listen", "gate_listen", "agent_listen"]
            .iter()
            .filter(|key| set(key).is_none())
            .filter_map(|key| {
                sources.get(*key).and_then(|(value, _)| value.as_ref()).map(|value| format!("# {key} = {value:?}\n"))
            })
            .collect();
    let text = format!(
        "# paystream settings: flags > environment (PAYSTREAMS_RPC, PAYSTREAMS_CHAIN, PAYSTREAMS_KEYSTORE, \
         PAYSTREAMS_NODE_RPC_ADDR, ...) > this file > defaults.\n# `paystream config show` prints the effective values \
         and where each came from.\n{body}{}",
        if defaults.is_empty() { String::new() } else { format!("# defaults in effect:\n{defaults}") }
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    ctx.emit(&json!({ "path": path.display().to_string(), "config": file }), || {
        format!("✓ wrote {}\n{text}", path.display())
    });
    Ok(())
}

fn show(ctx: &Ctx) {
    let sources = &ctx.common.sources;
    let object: serde_json::Map<String, Value> = sources
        .iter()
        .map(|(key, (value, source))| ((*key).to_owned(), json!({ "value": value, "source": source })))
        .collect();
    ctx.emit(&Value::Object(object), || {
        table(
            &["setting", "value", "from"],
            sources
                .iter()
                .map(|(key, (value, source))| {
                    vec![(*key).to_owned(), value.clone().unwrap_or_else(|| "-".into()), source.clone()]
                })
                .collect(),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_file_names_the_line() {
        let error = parse("rpc = \"http://127.0.0.1:3050\"\n\nchain = paystreams\n").expect_err("bare word");
        assert!(error.starts_with("line 3:"), "{error}");
        let error = parse("rpc = \"x\"\nport = 3\n").expect_err("unknown key");
        assert!(error.starts_with("line 2:") && error.contains("port"), "{error}");
        let error = parse("chain = \"ethereum\"\n").expect_err("unknown chain");
        assert!(error.starts_with("line 1:") && error.contains("lez"), "{error}");
        let parsed = parse("rpc = \"http://127.0.0.1:3050\"\nidentity = \"dev-0\"\n").expect("valid");
        assert_eq!(parsed.rpc.as_deref(), Some("http://127.0.0.1:3050"));
        assert_eq!(parsed.identity.as_deref(), Some("dev-0"));
    }
}
