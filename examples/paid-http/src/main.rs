//! `paid-http`: a JSON API that serves data only to requests paid by payment streams, asking a
//! running `paystream gate` about each one. See `docs/gate.md`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use paystreams_example_paid_http::service::{GateClient, router};

/// Serve `GET /v1/quotes?n=N` to paid requests (and `GET /policy` to everyone).
#[derive(Debug, Parser)]
#[command(after_help = "Example (with `paystream node --dev` and
`paystream gate --provider dev-1 --service-id /paystreams/example/paid-http/1` running):
  paid-http --gate http://127.0.0.1:8042 --gate-token-file ~/.paystreams/gate/token-<account>")]
struct Args {
    /// Where this service listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The gate's API address.
    #[arg(long, default_value = "http://127.0.0.1:8042")]
    gate: String,
    /// The file holding the gate's bearer token (`paystream gate` prints where it wrote it).
    #[arg(long)]
    gate_token_file: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let token = match std::fs::read_to_string(&args.gate_token_file) {
        Ok(text) => text.lines().next().unwrap_or_default().trim().to_owned(),
        Err(e) => {
            eprintln!("cannot read the gate token from {}: {e}", args.gate_token_file.display());
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    println!("paid-http listening on http://{}", args.listen);
    if let Err(e) = axum::serve(listener, router(GateClient::new(&args.gate, &token))).await {
        eprintln!("stopped: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
