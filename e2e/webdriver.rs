//! A small W3C WebDriver client for the browser test: Debian's `chromedriver` driving
//! headless `chromium`. Both must be installed (`make test` installs them through
//! `e2e/tools.sh`); a missing browser fails the test, never skips it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Fail (never pass) when the browser or its driver is missing.
pub fn require_browser() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `make test`, which installs Debian's chromium and chromium-driver"
        );
    }
}

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

/// A found element's WebDriver id.
#[derive(Debug, Clone)]
pub struct Element(String);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Start chromedriver on a free port and open a headless Chromium window.
    pub fn start(width: u32, height: u32) -> Browser {
        require_browser();
        let port = crate::harness::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = rt.block_on(async {
                let r = http.get(format!("{base}/status")).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                v["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::Builder::new()
            .prefix("sluice-chromium-")
            .tempdir()
            .expect("profile dir");
        // Without the background-networking flags Chromium reaches for the network, which
        // this machine refuses.
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            rt,
            _profile: profile,
        };
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let v: Value = self.rt.block_on(async {
            let request = match method {
                "GET" => self.http.get(&url),
                "DELETE" => self.http.delete(&url),
                _ => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            };
            let response = request.send().await.expect("chromedriver answers");
            response.json().await.expect("chromedriver answers JSON")
        });
        v["value"].clone()
    }

    /// Open `url`.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// Run `script` in the page; its `return` value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT_KEY].as_str().map(|id| Element(id.to_string()))
    }

    /// The visible text of the first element matching `css` (empty when there is none).
    /// Found and read in one script: the dashboard re-renders on every live update, so
    /// an element found by one WebDriver call may be gone by the next.
    pub fn text_of(&self, css: &str) -> String {
        self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The attribute `name` of the first element matching `css`; `None` when there is no
    /// such element or it lacks the attribute. Found and read in one script, as `text_of`.
    pub fn attribute_of(&self, css: &str, name: &str) -> Option<String> {
        self.execute(
            "const e = document.querySelector(arguments[0]); \
             return e ? e.getAttribute(arguments[1]) : null;",
            json!([css, name]),
        )
        .as_str()
        .map(str::to_string)
    }

    /// Click the first element matching `css` as a user would (WebDriver's click). When
    /// a re-render replaces the element between finding and clicking it, find it again
    /// (at most 20 times); any other failure, or no such element, panics.
    pub fn click_on(&self, css: &str) {
        for _ in 0..20 {
            let el = self
                .find(css)
                .unwrap_or_else(|| panic!("nothing to click matches {css}"));
            let v = self.call("POST", &format!("/element/{}/click", el.0), None);
            if v.is_null() {
                return;
            }
            if v["error"] != "stale element reference" {
                panic!("click on {css} failed: {v}");
            }
        }
        panic!("{css} was re-rendered under every one of 20 clicks");
    }

    /// Wait until `probe` yields `Some` (checked every 100 ms), or panic naming `what`
    /// with the page's text.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "the page never showed {what}; it shows:\n{}",
                    self.text_of("body")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 screenshot"))
            .expect("valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
