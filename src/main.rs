//! The `estuary` command.

use clap::{Parser, Subcommand};
use estuary::{
    config::{ServeArgs, Settings},
    server::Server,
};

/// Estuary: a live-streaming origin (RTMP in, LL-HLS out).
#[derive(Debug, Parser)]
#[command(name = "estuary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the origin with embedded defaults (overridable by --config FILE, ESTUARY_* variables, flags).
    Serve(ServeArgs),
    /// Print signed playback URLs for a stream (`live/{name}`): the multivariant playlist, the MPD and
    /// the player page; or their templates for a prefix (`live/`).
    /// Uses the same secret as `serve` with the same configuration.
    Token(TokenArgs),
    /// Print a stream's publish key and the RTMP and SRT URLs that present it.
    PublishKey(PublishKeyArgs),
    /// Print the HTTP API's bearer token (`Authorization: Bearer …` for /api/streams).
    ApiToken(ServeArgs),
    /// Print the effective configuration (defaults, file, environment and flags applied) as TOML, with
    /// secrets redacted. Exits non-zero, naming the key, when it is not valid.
    Config(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// `live/{name}` (one stream) or a prefix ending in `/` such as `live/`.
    scope: String,
    /// Lifetime, e.g. `30m`, `6h` [default: auth.token_ttl, 6h].
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<std::time::Duration>,
    /// Only this client address may use the token.
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    /// Base URL viewers reach the origin (or CDN) at [default: http://127.0.0.1:{http port}].
    #[arg(long)]
    base_url: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Args)]
struct PublishKeyArgs {
    /// `live/{name}`.
    stream: String,
    /// Host publishers reach the origin at [default: 127.0.0.1].
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[command(flatten)]
    serve: ServeArgs,
}

/// The secret `serve` would use with these settings.
fn load_auth(settings: &Settings) -> anyhow::Result<std::sync::Arc<estuary::auth::Auth>> {
    let data_dir = settings
        .hub
        .data_dir
        .clone()
        .unwrap_or_else(|| estuary::config::DEFAULT_DATA_DIR.into());
    Ok(estuary::auth::Auth::load(&settings.auth, &data_dir)?)
}

fn check_stream(stream: &str) -> anyhow::Result<()> {
    stream.parse::<media::name::StreamName>()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // srt-protocol warns once per unparsable datagram, without the sender: a flood of
                // junk would flood the log. Estuary reports those datagrams itself, rate-limited.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,srt_protocol=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => {
            let settings = Settings::load(&args.serve)?;
            let is_prefix = args.scope.ends_with('/');
            if is_prefix {
                anyhow::ensure!(
                    args.scope.len() > 1 && !args.scope.contains(['&', '=', '?', '#']),
                    "{:?} is not a prefix like live/",
                    args.scope
                );
            } else {
                check_stream(&args.scope)?;
            }
            let auth = load_auth(&settings)?;
            let ttl = args.ttl.unwrap_or(settings.token_ttl);
            let now = estuary::auth::unix_now_s();
            let claims = estuary::auth::TokenClaims {
                scope: args.scope.clone(),
                expires_unix_s: now.saturating_add(ttl.as_secs().max(1)),
                not_before_unix_s: None,
                client_ip: args.ip,
            };
            let token = auth.sign(&claims);
            let base = args.base_url.unwrap_or_else(|| {
                let mut addr = settings.http_listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            });
            let base = base.trim_end_matches('/');
            eprintln!(
                "# token for {} valid for {} (until Unix time {})",
                args.scope,
                humantime::format_duration(std::time::Duration::from_secs(ttl.as_secs().max(1))),
                claims.expires_unix_s
            );
            // The multivariant playlist, the MPD, and the origin's player page.
            let dir = if is_prefix {
                format!("{base}/t/{token}/{}{{name}}/", args.scope)
            } else {
                format!("{base}/t/{token}/{}/", args.scope)
            };
            println!("{dir}index.m3u8");
            println!("{dir}manifest.mpd");
            println!("{dir}");
            Ok(())
        }
        Command::Config(args) => {
            let settings = Settings::load(&args)?;
            let text = toml::to_string_pretty(&settings.effective())?;
            println!(
                "# Effective configuration of `estuary serve` (defaults, file, environment, flags).\n\
                 # Secrets that are set show as \"{}\".\n\n{text}",
                estuary::config::REDACTED
            );
            Ok(())
        }
        Command::ApiToken(args) => {
            let settings = Settings::load(&args)?;
            println!("{}", load_auth(&settings)?.api_token());
            Ok(())
        }
        Command::PublishKey(args) => {
            check_stream(&args.stream)?;
            let settings = Settings::load(&args.serve)?;
            let auth = load_auth(&settings)?;
            let key = auth.publish_key(&args.stream);
            let stream: media::name::StreamName = args.stream.parse()?;
            let name = stream.name();
            eprintln!(
                "# publish key for {} (OBS: server rtmp://{}:{}/live, stream key {name}?key=…)",
                args.stream,
                args.host,
                settings.rtmp_listen.port()
            );
            println!("{key}");
            println!(
                "rtmp://{}:{}/live/{name}?key={key}",
                args.host,
                settings.rtmp_listen.port()
            );
            println!(
                "srt://{}:{}?streamid=#!::r=live/{name},m=publish,key={key}",
                args.host,
                settings.srt_listen.port()
            );
            Ok(())
        }
        Command::Serve(args) => {
            let settings = Settings::load(&args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let server = Server::start(settings).await?;
                // SIGINT (Ctrl-C, `docker stop` with the image's STOPSIGNAL) or SIGTERM (systemd,
                // Kubernetes) start a graceful shutdown.
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let signal = tokio::select! {
                    r = tokio::signal::ctrl_c() => { r?; "SIGINT" }
                    _ = term.recv() => "SIGTERM",
                };
                tracing::info!(signal, "shutting down");
                server.shutdown().await;
                anyhow::Ok(())
            })
        }
    }
}
