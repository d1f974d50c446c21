//! The command line: `herald serve | migrate | keys | admin | user | …`.

use crate::config::Config;
use crate::{keys, open_store};
use chrono::Utc;
use clap::{Parser, Subcommand};
use herald_core::history::Actor;
use herald_core::profile::format_time;
use herald_core::service::{profiles, Ctx};
use herald_core::{DistinctId, Env, EnvScope};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: user profiles for notifications, SuprSend-compatible."
)]
pub struct Cli {
    /// A TOML config file (options in docs/configuration.md). HERALD_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The database: sqlite://PATH (default ./herald-data/herald.db) or postgres://...
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API. On first start, creates test and live keys.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the operator accounts that log in to the dashboard (http://<listen>/).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage the secrets that sign hosted preference page links.
    Links {
        #[command(subcommand)]
        command: LinksCommand,
    },
    /// The in-app inbox's browser credentials.
    Inbox {
        #[command(subcommand)]
        command: InboxCommand,
    },
    /// Read and change profiles from scripts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Copy everything this database holds (keys, profiles with their history and preferences,
    /// categories, property labels) into another, empty one: how to move from SQLite to
    /// PostgreSQL. Stop the Herald nodes writing to the source first.
    Copy {
        /// The target database: postgres://... or sqlite://PATH. It is migrated first.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Finish an interrupted copy into the same target: profiles it holds already are
        /// skipped, the rest are copied.
        #[arg(long)]
        resume: bool,
    },
    /// Make a VAPID key pair for the web push provider (`PUT /v1/provider/webpush/`, kind
    /// `vapid`): the public key as base64url (also the page's `applicationServerKey`) and the
    /// private key as a PKCS#8 PEM, printed as TOML lines for `[[providers]]`.
    VapidKeys {
        /// Print {"public_key","private_key"} as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Load synthetic profiles (user-0000000, user-0000001, …) fast, for benchmarks and demos,
    /// through the import path. Profile i is the same on every run, so ids that exist already
    /// are upserted unchanged and a second run with a larger --count tops up.
    Seed {
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
        /// How many profiles.
        #[arg(long)]
        count: u64,
        /// Number of the first profile (to add a range after an earlier run).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Profiles written per unit of work.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key set (workspace key, workspace secret, bearer API key) for one environment.
    Create {
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
        /// Print {"env","workspace_key","workspace_secret","api_key"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List key sets (no secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key set: its workspace secret and bearer key stop working at once, on every node.
    /// Create the replacement first (`keys create`) if clients still need the environment.
    Revoke {
        /// The key set's workspace key (hk_test_… or hk_live_…), as `keys list` shows it.
        workspace_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account. The password (12 characters or more) is read from the first
    /// line of standard input: `printf '%s\n' "$PASSWORD" | herald admin create --username ada --password-stdin`.
    Create {
        /// 1 to 64 letters, digits, '.', '_' or '-' (lower-cased).
        #[arg(long, value_name = "NAME")]
        username: String,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List operator accounts (no passwords or hashes).
    List {
        /// Print [{"username","created_at"}] as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an operator account; its sessions end at once.
    Delete {
        /// The account's username.
        username: String,
    },
    /// Set a new password (read from the first line of standard input); the account's sessions
    /// end and its login throttle is cleared.
    ResetPassword {
        /// The account's username.
        username: String,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinksCommand {
    /// Mint a new current link secret (with a new key id): links are signed with it from now on
    /// (running nodes pick it up within a minute). Links signed earlier keep opening until their
    /// secret is retired.
    Rotate {
        /// Also retire every older secret: every link minted before stops opening at once (after
        /// a leak). Without it, run `herald links retire` once the old links may lapse.
        #[arg(long)]
        retire_old: bool,
    },
    /// Retire every secret but the current one: links they signed stop opening.
    Retire,
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Print the environment's inbox secret (created on first use), the key of every
    /// subscriber_id: subscriber_id = hex(HMAC-SHA256(secret, distinct_id)).
    Secret {
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
        /// Replace it with a new one first: every subscriber_id made with the old one is refused
        /// from the next request on (open streams end within inbox.stream_max_secs).
        #[arg(long)]
        rotate: bool,
    },
    /// Print a user's subscriber_id, what their browser sends to /inbox/{workspace_key}/{id}/.
    Subscriber {
        distinct_id: String,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print a profile as JSON.
    Get {
        distinct_id: String,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
    },
    /// Create or update a profile from a JSON object of properties and channels (as POST /v1/user/{id}/).
    Set {
        distinct_id: String,
        /// e.g. '{"name": "Ada", "$email": ["ada@example.com"]}'
        properties: String,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
    },
    /// Delete a profile.
    Delete {
        distinct_id: String,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
    },
    /// Write the profiles of an environment as NDJSON (the format `import` reads back) or CSV,
    /// in distinct_id order, a page at a time: properties, status and identities; not history
    /// or preferences. `herald user export --env test | herald user import --env live
    /// --format ndjson -` copies test users to live.
    Export {
        /// The file to write; standard output when absent.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
        /// Only profiles matching a filter of GET /v1/user/, as NAME=VALUE: prop.plan=eq:pro,
        /// status=disabled, has_channel=sms, created_at=gte:2026-01-01T00:00:00Z, q=ada. Repeat
        /// to combine (AND).
        #[arg(long, value_name = "NAME=VALUE")]
        filter: Vec<String>,
        /// ndjson (default) or csv.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: crate::import::Format,
        /// CSV columns, comma-separated: distinct_id, properties and channel keys as an import
        /// header names them (a channel column holds the first identity).
        #[arg(long, value_name = "COLUMNS", default_value = crate::ndjson::DEFAULT_COLUMNS)]
        columns: String,
    },
    /// Create or update profiles from NDJSON (one JSON object per line, `distinct_id` beside the
    /// keys of an upsert body, e.g. {"distinct_id": "ada", "name": "Ada", "$email": ["ada@example.com"]})
    /// or CSV with a header row (`distinct_id,name,$email,$sms,plan,age:number`; see the README).
    /// Lines are applied in chunks of 1,024, each committed before the next. Refused lines are
    /// listed with their numbers and the rest kept; running the file again leaves every profile
    /// as the file says, so an interrupted import is resumed by running it again. Exits non-zero
    /// if any line was refused.
    Import {
        /// The file (.ndjson, .jsonl, .json or .csv), or - for standard input (with --format).
        file: PathBuf,
        /// The environment: test or live.
        #[arg(long, value_parser = parse_env)]
        env: Env,
        /// The input's format; by default the file's extension decides.
        #[arg(long, value_enum)]
        format: Option<crate::import::Format>,
        /// Write each refused line to this file as NDJSON: {"line": N, "reason": "...", "input": "<the line>"}.
        #[arg(long, value_name = "FILE")]
        rejects: Option<PathBuf>,
        /// Check every line by the import's rules against the profiles as stored, write
        /// nothing, and report what would be refused and how many lines would apply.
        #[arg(long)]
        dry_run: bool,
        /// After each committed chunk, print `committed through line N` on standard error (for
        /// scripts that watch a long import).
        #[arg(long)]
        log_chunks: bool,
    },
}

fn parse_env(raw: &str) -> Result<Env, String> {
    raw.parse()
}

/// Runs a parsed command line. Errors are messages for the operator.
pub async fn run(cli: Cli) -> Result<(), String> {
    let mut config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(url) = cli.database_url {
        config.database_url = url;
    }
    crate::init_logging(&config);
    match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let listener = tokio::net::TcpListener::bind(&config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            crate::run(config, listener).await
        }
        Command::Migrate => {
            crate::open_store_with(&config, true).await?;
            println!(
                "database schema is up to date ({})",
                redact(&config.database_url)
            );
            Ok(())
        }
        Command::Keys { command } => keys_command(&config, command).await,
        Command::Copy { to, resume } => copy_command(&config, &to, resume).await,
        Command::Links { command } => links_command(&config, command).await,
        Command::Inbox { command } => inbox_command(&config, command).await,
        Command::Admin { command } => admin_command(&config, command).await,
        Command::User { command } => user_command(&config, command).await,
        Command::VapidKeys { json } => {
            let (public_key, private_key) = herald_channels::webpush::generate_vapid_keys()
                .map_err(|_| "could not generate a P-256 key pair".to_owned())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"public_key": public_key, "private_key": private_key})
                );
            } else {
                println!(
                    "public_key = \"{public_key}\"\nprivate_key = \"\"\"\n{private_key}\"\"\""
                );
            }
            Ok(())
        }
        Command::Seed {
            env,
            count,
            from,
            batch,
        } => {
            let store = open_store(&config).await?;
            let ctx = Ctx::new(EnvScope::operator(env), Actor::cli(), Utc::now());
            let started = std::time::Instant::now();
            let created = crate::seed::run(store.as_ref(), &ctx, from, count, batch.max(1)).await?;
            eprintln!(
                "created {created} profiles in {env} in {:.1}s ({} existed already)",
                started.elapsed().as_secs_f64(),
                count - created
            );
            Ok(())
        }
    }
}

async fn keys_command(config: &Config, command: KeysCommand) -> Result<(), String> {
    let store = open_store(config).await?;
    match command {
        KeysCommand::Create { env, json } => {
            let new = keys::create(store.as_ref(), env).await?;
            if json {
                println!("{}", keys::to_json(&new));
            } else {
                let c = &new.credentials;
                println!("env:              {}", c.env);
                println!("workspace_key:    {}", c.workspace_key);
                println!("workspace_secret: {}", c.workspace_secret);
                println!("api_key:          {}", new.api_key);
                println!("\nThe API key is shown only now; store it safely.");
            }
        }
        KeysCommand::Revoke { workspace_key } => {
            let revoked = keys::revoke(store.as_ref(), &workspace_key).await?;
            println!("revoked {workspace_key} ({})", revoked.env);
            if revoked.was_last {
                eprintln!(
                    "{} has no key set left; create one with: herald keys create --env {}",
                    revoked.env, revoked.env
                );
            }
        }
        KeysCommand::List { json } => {
            let all = store.list_credentials().await.map_err(|e| e.to_string())?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|c| serde_json::json!({"env": c.env, "workspace_key": c.workspace_key, "api_key_prefix": c.api_key_prefix, "created_at": format_time(c.created_at)}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<5} {:<32} {:<14} created_at",
                    "env", "workspace_key", "api_key"
                );
                for c in all {
                    println!(
                        "{:<5} {:<32} {:<14} {}",
                        c.env,
                        c.workspace_key,
                        format!("{}…", c.api_key_prefix),
                        format_time(c.created_at)
                    );
                }
            }
        }
    }
    Ok(())
}

async fn user_command(config: &Config, command: UserCommand) -> Result<(), String> {
    let store = open_store(config).await?;
    let ctx = |env: Env| Ctx::new(EnvScope::operator(env), Actor::cli(), Utc::now());
    let id = |raw: &str| DistinctId::parse(raw).map_err(|e| e.to_string());
    let profile = match command {
        UserCommand::Get { distinct_id, env } => {
            profiles::get(store.as_ref(), &ctx(env), &id(&distinct_id)?).await
        }
        UserCommand::Set {
            distinct_id,
            properties,
            env,
        } => {
            let body: serde_json::Value = serde_json::from_str(&properties)
                .map_err(|e| format!("properties are not valid JSON: {e}"))?;
            profiles::upsert(store.as_ref(), &ctx(env), &id(&distinct_id)?, &body).await
        }
        UserCommand::Export {
            output,
            env,
            filter,
            format,
            columns,
        } => {
            let shape = match format {
                crate::import::Format::Ndjson => crate::ndjson::Shape::Ndjson,
                crate::import::Format::Csv => crate::ndjson::Shape::Csv(
                    columns.split(',').map(|c| c.trim().to_owned()).collect(),
                ),
            };
            return export_command(store, ctx(env), output.as_deref(), &filter, &shape).await;
        }
        UserCommand::Import {
            file,
            env,
            format,
            rejects,
            dry_run,
            log_chunks,
        } => {
            let options = ImportOptions {
                format,
                rejects,
                dry_run,
                log_chunks,
            };
            return import_command(store, ctx(env), &file, options).await;
        }
        UserCommand::Delete { distinct_id, env } => {
            profiles::delete(store.as_ref(), &ctx(env), &id(&distinct_id)?)
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted {distinct_id} ({env})");
            return Ok(());
        }
    }
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&profile.to_wire()).expect("profiles serialise")
    );
    Ok(())
}

async fn copy_command(config: &Config, to: &str, resume: bool) -> Result<(), String> {
    use herald_core::service::copy;
    let from = open_store(config).await?;
    let target = Config {
        database_url: to.to_owned(),
        ..config.clone()
    };
    let to_store = crate::open_store_with(&target, true).await?;
    let total: u64 = profiles::counts_per_env(from.as_ref())
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let bar = crate::profiles_bar(total);
    let started = std::time::Instant::now();
    let progress = |_, n| bar.inc(n);
    let report = if resume {
        copy::resume(from.as_ref(), to_store.as_ref(), &progress).await
    } else {
        copy::run(from.as_ref(), to_store.as_ref(), &progress).await
    }
    .map_err(|e| format!("copy refused: {e}"))?;
    bar.finish_and_clear();
    let kept = herald_core::service::links::copy_keyring(from.as_ref(), to_store.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "copied into {} in {:.1}s: {} key sets, {} operator accounts",
        redact(to),
        started.elapsed().as_secs_f64(),
        report.credentials,
        report.operators
    );
    for (env, r) in [(Env::Test, &report.test), (Env::Live, &report.live)] {
        eprintln!(
            "  {env}: {} profiles ({} already there), {} history events, {} categories, {} workflows, {} providers, {} property records",
            r.profiles, r.skipped, r.history_events, r.categories, r.workflows, r.providers, r.properties
        );
    }
    if !kept {
        eprintln!("the target had its own preference-link secret and keeps it: links sent before the move no longer open");
    }
    let inbox_kept = herald_core::service::inbox::copy_secrets(from.as_ref(), to_store.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    if !inbox_kept {
        eprintln!(
            "the target had its own inbox secret and keeps it: browsers need new subscriber ids"
        );
    }
    Ok(())
}

/// The filters of `GET /v1/user/` from `NAME=VALUE` arguments; a name that is not a filter is
/// refused (rather than ignored, as a query string's unknown parameters are).
fn export_filter(args: &[String]) -> Result<herald_core::filter::Filter, String> {
    let mut pairs = Vec::with_capacity(args.len());
    for arg in args {
        let (name, value) = arg.split_once('=').ok_or_else(|| {
            format!("--filter '{arg}': must be NAME=VALUE, e.g. prop.plan=eq:pro")
        })?;
        let name = name.trim();
        let known = matches!(
            name,
            "status" | "has_channel" | "lacks_channel" | "q" | "created_at" | "updated_at"
        ) || name.starts_with("prop.");
        if !known {
            return Err(format!("--filter '{arg}': '{name}' is not a filter (status, has_channel, lacks_channel, q, created_at, updated_at, prop.KEY)"));
        }
        pairs.push((name.to_owned(), value.to_owned()));
    }
    herald_core::filter::Filter::parse(&pairs).map_err(|e| format!("--filter {e}"))
}

async fn export_command(
    store: std::sync::Arc<dyn herald_core::store::Store>,
    ctx: Ctx,
    output: Option<&std::path::Path>,
    filter: &[String],
    shape: &crate::ndjson::Shape,
) -> Result<(), String> {
    let filter = export_filter(filter)?;
    let bar = if filter.is_empty() {
        let total = profiles::count_all(store.as_ref(), ctx.scope)
            .await
            .map_err(|e| e.to_string())?;
        crate::profiles_bar(total)
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    let mut out: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = crate::ndjson::export(store.as_ref(), ctx.scope, filter, shape, &mut out, |n| {
        bar.inc(n)
    })
    .await?;
    out.flush().map_err(|e| format!("cannot write: {e}"))?;
    bar.finish_and_clear();
    eprintln!("exported {written} profiles from {}", ctx.scope.env());
    Ok(())
}

/// The options of `herald user import`.
struct ImportOptions {
    format: Option<crate::import::Format>,
    rejects: Option<PathBuf>,
    dry_run: bool,
    log_chunks: bool,
}

async fn import_command(
    store: std::sync::Arc<dyn herald_core::store::Store>,
    ctx: Ctx,
    file: &std::path::Path,
    options: ImportOptions,
) -> Result<(), String> {
    use crate::import::{self, Format, Reader};
    use std::io::{BufReader, Write};
    let stdin = file == std::path::Path::new("-");
    let format = match (options.format, stdin) {
        (Some(f), _) => f,
        (None, true) => return Err("reading standard input needs --format ndjson or --format csv".into()),
        (None, false) => Format::of_path(file).ok_or_else(|| {
            format!(
                "cannot tell the format of {} from its extension (.ndjson, .jsonl, .json or .csv): give --format",
                file.display()
            )
        })?,
    };
    let bar = indicatif::ProgressBar::new(0);
    let input: Box<dyn std::io::BufRead + Send> = if stdin {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bytes} read ({bytes_per_sec})",
            )
            .expect("a valid template"),
        );
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        bar.set_length(f.metadata().map(|m| m.len()).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
            )
            .expect("a valid template"),
        );
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    let reader = Reader::new(input, format)?;
    let mut rejects = match &options.rejects {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let count = || async {
        profiles::count_all(store.as_ref(), ctx.scope)
            .await
            .map_err(|e| e.to_string())
    };
    let before = count().await?;
    let started = std::time::Instant::now();
    const SHOWN: u64 = 50;
    let mut shown = 0;
    let mut read = 0;
    let summary = import::run(store.as_ref(), &ctx, reader, options.dry_run, |done| {
        for refused in &done.outcome.refused {
            if shown < SHOWN {
                bar.suspend(|| eprintln!("line {}: {}", refused.line, refused.error));
                shown += 1;
            }
            if let Some(out) = rejects.as_mut() {
                writeln!(out, "{}", refused.reject_line())
                    .map_err(|e| format!("cannot write the rejects file: {e}"))?;
            }
        }
        if let Some(out) = rejects.as_mut() {
            out.flush()
                .map_err(|e| format!("cannot write the rejects file: {e}"))?;
        }
        bar.inc(done.bytes - read);
        read = done.bytes;
        if options.log_chunks && !options.dry_run {
            bar.suspend(|| eprintln!("committed through line {}", done.last_line));
        }
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if options.dry_run {
        eprintln!(
            "dry run: {} lines would apply to {}, {} would be refused; nothing was written",
            summary.applied,
            ctx.scope.env(),
            summary.refused
        );
    } else {
        let after = count().await?;
        eprintln!(
            "applied {} lines to {} in {seconds:.1}s ({:.0} lines/s); {} new profiles ({after} now)",
            summary.applied,
            ctx.scope.env(),
            summary.applied as f64 / seconds.max(1e-9),
            after.saturating_sub(before),
        );
    }
    let listed = match &options.rejects {
        Some(path) => format!("listed in {}", path.display()),
        None if summary.refused > SHOWN => format!("the first {SHOWN} are listed above"),
        None => "listed above".into(),
    };
    match summary.refused {
        0 => Ok(()),
        1 => Err(format!("1 line was refused ({listed})")),
        n => Err(format!("{n} lines were refused ({listed})")),
    }
}

async fn inbox_command(config: &Config, command: InboxCommand) -> Result<(), String> {
    use herald_core::service::inbox;
    let store = open_store(config).await?;
    let ctx = |env| Ctx::new(EnvScope::operator(env), Actor::cli(), Utc::now());
    match command {
        InboxCommand::Secret { env, rotate } => {
            let secret = if rotate {
                inbox::rotate_secret(store.as_ref(), &ctx(env)).await
            } else {
                inbox::secret(store.as_ref(), &ctx(env)).await
            }
            .map_err(|e| e.to_string())?;
            println!("{secret}");
        }
        InboxCommand::Subscriber { distinct_id, env } => {
            let id = DistinctId::parse(&distinct_id).map_err(|e| e.to_string())?;
            let secret = inbox::secret(store.as_ref(), &ctx(env))
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", herald_core::inbox::subscriber_id(&secret, &id));
        }
    }
    Ok(())
}

async fn admin_command(config: &Config, command: AdminCommand) -> Result<(), String> {
    use crate::admin;
    let store = open_store(config).await?;
    match command {
        AdminCommand::Create { username, .. } => {
            let password = password_from_stdin()?;
            let created = admin::create(store.as_ref(), &username, &password, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created operator {}; log in at {}/login",
                created.username,
                config.public_base()
            );
        }
        AdminCommand::List { json } => {
            let all = store.list_operators().await.map_err(|e| e.to_string())?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|o| serde_json::json!({"username": o.username.as_str(), "created_at": format_time(o.created_at)}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if all.is_empty() {
                eprintln!("no operator accounts; create one with: herald admin create --username NAME --password-stdin");
            } else {
                println!("{:<32} created_at", "username");
                for o in all {
                    println!("{:<32} {}", o.username.as_str(), format_time(o.created_at));
                }
            }
        }
        AdminCommand::Delete { username } => {
            admin::delete(store.as_ref(), &username)
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted operator {}", username.trim().to_ascii_lowercase());
        }
        AdminCommand::ResetPassword { username, .. } => {
            let password = password_from_stdin()?;
            admin::reset_password(store.as_ref(), &username, &password)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "new password set for {}; their sessions have ended",
                username.trim().to_ascii_lowercase()
            );
        }
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> Result<String, String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input (give it as the first line)".into());
    }
    Ok(password)
}

async fn links_command(config: &Config, command: LinksCommand) -> Result<(), String> {
    use herald_core::service::links;
    let store = open_store(config).await?;
    match command {
        LinksCommand::Rotate { retire_old } => {
            let (kid, retired) = links::rotate(store.as_ref(), retire_old)
                .await
                .map_err(|e| e.to_string())?;
            println!("preference links are now signed with key {kid}");
            if retire_old {
                println!("retired {retired} older key(s): links they signed no longer open");
            } else {
                println!("older keys still verify; `herald links retire` retires them");
            }
        }
        LinksCommand::Retire => {
            let retired = links::retire_old(store.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            println!("retired {retired} older key(s): links they signed no longer open");
        }
    }
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    herald_store::redact_url(url)
}
