//! `tailor serve`: the HTTP API over the stored data.

use anyhow::Context as _;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::config::Config;
use crate::{open_store, usage};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 [config: serve.addr].
    #[arg(long, visible_alias = "listen", value_name = "HOST:PORT")]
    pub(crate) addr: Option<String>,
    /// Retrain in the background this often, e.g. `1h` [config: serve.retrain_every].
    #[arg(long, value_name = "PERIOD")]
    pub(crate) retrain_every: Option<tailor_core::Parsed<tailor_server::config::Period>>,
}

pub(crate) fn server_state(
    config: &Config,
    store: std::sync::Arc<dyn tailor_store::Store>,
) -> Result<tailor_server::AppState> {
    tailor_server::AppState::open(
        config.serve.clone(),
        store,
        config.interactions.clone(),
        config.store.data_dir.join("models"),
    )
    .map_err(|e| anyhow::anyhow!("starting the server state: {e}"))
}

/// Binds the address to serve (`--addr` if given, else `serve.addr`) before anything slow
/// happens, so a taken port is reported at once and names the setting.
pub(crate) fn listen(config: &Config, addr: Option<&str>) -> Result<std::net::TcpListener> {
    let (text, setting) = match addr {
        Some(a) => (a.to_string(), "--addr"),
        None => (config.serve.addr.clone(), "serve.addr"),
    };
    let addr: std::net::SocketAddr =
        text.parse().map_err(|e| usage(format!("{setting} {text:?}: not an address like 127.0.0.1:8080 ({e})")))?;
    tailor_server::bind(&config.serve, addr, setting).map_err(anyhow::Error::msg)
}

/// Loads the state, trains or loads the live version, and serves on `listener` until
/// Ctrl-C / SIGTERM.
pub(crate) fn serve(config: &Config, listener: std::net::TcpListener) -> Result<()> {
    let addr = listener.local_addr()?;
    let store: std::sync::Arc<dyn tailor_store::Store> = std::sync::Arc::new(open_store(config)?);
    let start = Instant::now();
    let state = std::sync::Arc::new(server_state(config, store)?);
    // On the training thread, like every later training (see `tailor_server::models`).
    let starting = state.clone();
    let info =
        state.models.trainer.run_blocking(move || starting.start_blocking())?.context("loading the served models")?;
    tracing::info!(seconds = start.elapsed().as_secs_f64(), version = info.version, pairs = info.pairs, "ready");
    eprintln!(
        "models ready in {:.2} s ({} users, {} items, {} pairs); listening on http://{addr}",
        start.elapsed().as_secs_f64(),
        info.users,
        info.items,
        info.pairs
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(tailor_server::serve(state, listener))?;
    Ok(())
}

/// `tailor serve [--addr] [--retrain-every]`.
pub(crate) fn run(config: &Config, args: &ServeArgs) -> Result<()> {
    let mut config = config.clone();
    if let Some(every) = &args.retrain_every {
        config.serve.retrain_every = every.clone();
    }
    let listener = listen(&config, args.addr.as_deref())?;
    serve(&config, listener)
}
