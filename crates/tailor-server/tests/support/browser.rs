//! Headless Chromium over WebDriver for the browser tests (shared by `tailor-server`'s
//! `tests/browser.rs` and `tailor-cli`'s demo dashboard test): Debian's `chromium` and
//! `chromium-driver` (`CHROMIUM`, `CHROMEDRIVER` override their paths).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

pub struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client")
    }

    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver and a headless Chromium session.
pub async fn browser() -> Browser {
    let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chrome_bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chrome_bin).exists(),
        "browser tests need Debian's chromium and chromium-driver: apt-get install --no-install-recommends chromium chromium-driver"
    );
    let port = free_port();
    let driver = Command::new(&driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().expect("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome_bin,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("webdriver session");
    Browser { driver, client: Some(client), _profile: profile }
}

pub fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("browser");
    fs_err::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.expect("script runs")
}

/// Polls `script` until it returns something other than null/false, for up to `secs`.
pub async fn until(c: &Client, script: &str, secs: u64) -> Value {
    let start = Instant::now();
    loop {
        let v = js(c, script).await;
        if !(v.is_null() || v == json!(false)) {
            return v;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let seen = js(c, "return JSON.stringify({slots: Array.prototype.map.call(document.querySelectorAll('[data-tailor-slot]'), function (s) { return s.id + ':' + (s.dataset.tailorState || 'idle'); }), requests: performance.getEntriesByType('resource').map(function (e) { return e.name; }), errors: window.__errors})").await;
            panic!("timed out waiting for: {script}\npage: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
