//! The dashboard in a real browser: headless Chromium (driven by chromedriver) logs in with
//! the cluster's token, sees the nodes and a running actor, and sees a task count change
//! live without a reload; requests without the token are refused.
//!
//! Set `MOBULA_SCREENSHOT=dashboard.png` to keep a screenshot of the page.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, http};
use common::{eventually, local_cluster, turn};
use mobula::prelude::*;

#[mobula::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[mobula::actor]
struct Watched {
    n: u64,
}

#[mobula::actor]
impl Watched {
    fn new() -> Self {
        Watched { n: 0 }
    }

    fn poke(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

#[test]
fn the_dashboard_shows_the_cluster_live_in_a_real_browser() {
    let Some(browser) = Browser::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium and chromedriver (.ci/run installs them)"
        );
        eprintln!("skipped: chromium or chromedriver is not installed");
        return;
    };
    let _turn = turn();
    let head = Config::default()
        .num_cpus(0)
        .dashboard_address("127.0.0.1:0");
    let (cluster, workers, _driver) =
        local_cluster(head, || Config::default().num_cpus(2), 2, |c| c);
    let actor = Watched::options().name("watched").remote().unwrap();
    assert_eq!(actor.poke().get().unwrap(), 1);
    let (address, token) = cluster
        .dashboard(cluster.head())
        .expect("the head serves it");
    assert!(address.ip().is_loopback());
    assert_eq!(token, cluster.join_info().token, "the cluster's join token");
    let address = address.to_string();

    // Without the token, or with a wrong one, no data.
    for path in ["/api/state", "/events"] {
        let (status, _) = http(&address, "GET", path, &[], None).unwrap();
        assert_eq!(status, 401, "{path} without a token");
    }
    let wrong = [("Authorization", "Bearer not-the-token")];
    assert_eq!(
        http(&address, "GET", "/api/state", &wrong, None).unwrap().0,
        401
    );
    let bearer = format!("Bearer {token}");
    let (status, body) = http(
        &address,
        "GET",
        "/api/state",
        &[("Authorization", &bearer)],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        state["nodes"].as_array().unwrap().len(),
        4,
        "head, two workers, driver"
    );
    // The login page is all one gets without the cookie.
    let (status, page) = http(&address, "GET", "/", &[], None).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("name=\"token\"") && !page.contains("/app.js"));

    // In the browser: a wrong token is refused, the right one lets in.
    let url = format!("http://{address}/");
    browser.goto(&url);
    browser.type_into("#token", "wrong");
    browser.click("#login");
    // The form posts and a new page loads: wait for it, not for the old one.
    eventually("a wrong token is refused", || {
        browser.text("body").contains("Wrong token")
    });
    browser.type_into("#token", &token);
    browser.click("#login");
    eventually("the page gets live state", || {
        browser
            .run("return window.mobulaUpdates || 0")
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let nodes = browser.text("#nodes");
    for w in &workers {
        assert!(nodes.contains(&w.to_string()), "worker {w} in {nodes}");
    }
    eventually("the running actor is shown", || {
        let actors = browser.text("#actors");
        actors.contains("Watched") && actors.contains("ALIVE") && actors.contains("watched")
    });

    // A task count changes live, without a reload.
    browser.run("window.keptAcrossUpdates = 'yes'; return 0");
    let finished = || {
        browser
            .run("return window.mobulaState.task_states.FINISHED")
            .as_u64()
            .unwrap()
    };
    let before = finished();
    let refs: Vec<_> = (0..25).map(|i| square.remote(i)).collect();
    assert_eq!(mobula::get_all(&refs).unwrap().len(), 25);
    eventually("the finished count rises by 25 on the page", || {
        finished() >= before + 25
    });
    let shown = browser.text("#task-states-FINISHED");
    assert!(
        shown.starts_with(&(before + 25).to_string()),
        "the count is drawn: {shown}"
    );
    assert_eq!(
        browser.run("return window.keptAcrossUpdates"),
        serde_json::json!("yes"),
        "the page was not reloaded"
    );
    if let Some(path) = std::env::var_os("MOBULA_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot()).unwrap();
        eprintln!("screenshot: {}", std::path::Path::new(&path).display());
    }
}
