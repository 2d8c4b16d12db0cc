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
        Command::Serve(args) => {
            let settings = Settings::load(&args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let server = Server::start(settings).await?;
                tokio::signal::ctrl_c().await?;
                tracing::info!("shutting down");
                server.shutdown().await;
                anyhow::Ok(())
            })
        }
    }
}
