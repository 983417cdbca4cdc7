//! The dashboard in a real browser: headless Chromium (driven by chromedriver) logs in with
//! the dashboard's token, sees the nodes and a running actor, and sees a task count change
//! live without a reload; requests without the token are refused. Without a browser: only
//! the dashboard's own token is taken (never the join token), over HTTP and HTTPS.
//!
//! Set `MOBULA_SCREENSHOT=dashboard.png` to keep a screenshot of the page.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, http, https};
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
    assert_ne!(token, cluster.join_info().token, "a token of its own");
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
    // The driver is a job, running.
    let jobs = state["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["status"], "RUNNING");
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
    let jobs = browser.text("#jobs");
    assert!(jobs.contains("job-1") && jobs.contains("RUNNING"), "{jobs}");
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

/// Without a browser: the dashboard takes its own read-only token and no other (the join
/// token least of all), over plain HTTP on loopback and over HTTPS under the cluster CA,
/// where its cookie is `Secure`.
#[test]
fn the_dashboard_takes_only_its_own_token_over_http_and_https() {
    let _turn = turn();
    let head = Config::default()
        .num_cpus(0)
        .dashboard_address("127.0.0.1:0")
        .dashboard_https(true);
    let (mut cluster, _workers, _driver) =
        local_cluster(head, || Config::default().num_cpus(1), 1, |c| c);
    let plain = cluster
        .add_node(
            Config::default()
                .num_cpus(1)
                .dashboard_address("127.0.0.1:0"),
        )
        .unwrap();
    let join_token = cluster.join_info().token.clone();
    let ca_der = std::fs::read(cluster.dir().join("ca.der")).unwrap();
    let kept = std::fs::read_to_string(cluster.dir().join("dashboard-token")).unwrap();

    // Over HTTPS, on the head.
    let (address, token) = cluster.dashboard(cluster.head()).unwrap();
    assert!(address.ip().is_loopback());
    assert_eq!(
        token,
        kept.trim(),
        "the token kept in the cluster directory"
    );
    assert_ne!(token, join_token);
    let address = address.to_string();
    let get = |path: &str, headers: &[(&str, &str)]| {
        https(&address, "localhost", &ca_der, "GET", path, headers, None).unwrap()
    };
    for path in ["/api/state", "/events"] {
        assert_eq!(get(path, &[]).0, 401, "{path} without a token");
        let join = format!("Bearer {join_token}");
        assert_eq!(
            get(path, &[("Authorization", &join)]).0,
            401,
            "{path} with the join token"
        );
        let cookie = format!("mobula_token={join_token}");
        assert_eq!(get(path, &[("Cookie", &cookie)]).0, 401);
    }
    let bearer = format!("Bearer {token}");
    let (status, _, body) = get("/api/state", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["nodes"].as_array().unwrap().len(), 4);
    // The login takes the dashboard's token only, and its cookie is Secure over HTTPS.
    let login = |given: &str| {
        let form = format!("token={given}");
        https(
            &address,
            "127.0.0.1",
            &ca_der,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(&form),
        )
        .unwrap()
    };
    assert_eq!(login(&join_token).0, 401);
    let (status, head, _) = login(&token);
    assert_eq!(status, 303);
    let set_cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a cookie is set");
    assert!(
        set_cookie.contains("httponly") && set_cookie.contains("; secure"),
        "{set_cookie}"
    );
    let cookie = format!("mobula_token={token}");
    assert_eq!(get("/api/state", &[("Cookie", &cookie)]).0, 200);
    // Plain HTTP on the HTTPS port gets nothing.
    assert!(
        http(
            &address,
            "GET",
            "/api/state",
            &[("Authorization", &bearer)],
            None
        )
        .map_or(true, |(status, _)| status != 200)
    );
    // A certificate for another name, or from another CA, is not accepted by the client.
    assert!(https(&address, "example.com", &ca_der, "GET", "/", &[], None).is_err());

    // Over plain HTTP, on a worker sharing the cluster directory: the same token, no other.
    let (address, worker_token) = cluster.dashboard(plain).unwrap();
    assert_eq!(worker_token, token);
    let address = address.to_string();
    assert_eq!(
        http(&address, "GET", "/api/state", &[], None).unwrap().0,
        401
    );
    let join = format!("Bearer {join_token}");
    assert_eq!(
        http(
            &address,
            "GET",
            "/api/state",
            &[("Authorization", &join)],
            None
        )
        .unwrap()
        .0,
        401
    );
    assert_eq!(
        http(
            &address,
            "GET",
            "/api/state",
            &[("Authorization", &bearer)],
            None
        )
        .unwrap()
        .0,
        200
    );
}
