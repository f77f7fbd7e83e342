//! The public HTTP contract of docs/architecture.md.

use counter::Role;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread")]
async fn inc_three_times_counts_one_two_three_and_root_shows_three() {
    let app = spawn_app().await;

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(app.count_at("/inc").await);
    }

    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(app.count_at("/").await, 3);
    let post = app.post("/inc").await;
    assert_eq!(post.status(), 200);
    assert_eq!(post.text().await.unwrap(), "4\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_is_served_when_asked_for() {
    let app = spawn_app().await;

    let inc = app.client.post(format!("{}/inc", app.addr)).header("accept", "application/json").send().await.unwrap();
    let root = app.client.get(format!("{}/", app.addr)).header("accept", "application/json").send().await.unwrap();

    assert_eq!(inc.headers()["content-type"], "application/json");
    assert_eq!(inc.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"count": 1}));
    assert_eq!(root.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"count": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_get_a_page_with_security_headers() {
    let app = spawn_app().await;

    let page = app.client.get(format!("{}/", app.addr)).header("accept", "text/html,*/*;q=0.8").send().await.unwrap();

    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("<button id=\"inc\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_sites_page_cannot_make_a_browser_increment_but_the_own_page_can() {
    let app = spawn_app().await;
    let inc = format!("{}/inc", app.addr);

    let image = app.client.get(&inc).header("sec-fetch-site", "cross-site").send().await.unwrap();
    let form = app.client.post(&inc).header("origin", "https://elsewhere.example").send().await.unwrap();
    let button = app
        .client
        .post(&inc)
        .header("sec-fetch-site", "same-origin")
        .header("origin", app.addr.as_str())
        .send()
        .await
        .unwrap();

    assert_eq!(image.status(), 403);
    assert_eq!(image.json::<serde_json::Value>().await.unwrap()["code"], "cross_site");
    assert_eq!(form.status(), 403);
    assert_eq!(button.status(), 200);
    assert_eq!(button.text().await.unwrap(), "1\n", "only the own page's increment counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_404_and_wrong_methods_405_in_json() {
    let app = spawn_app().await;

    let missing = app.get("/nope").await;
    let wrong = app.client.delete(format!("{}/inc", app.addr)).send().await.unwrap();

    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(body["error"].is_string());
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, POST");
    assert_eq!(wrong.json::<serde_json::Value>().await.unwrap()["code"], "method_not_allowed");
    assert_eq!(app.count_at("/").await, 0, "a refused request changes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_answer_on_the_service_address() {
    let app = spawn_app().await;
    app.count_at("/inc").await;

    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();

    assert!(metrics.contains(r#"counter_http_requests_total{route="/inc",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains("counter_write_batch_size_count 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_id_is_taken_from_traceparent_or_made_up_and_echoed() {
    let app = spawn_app().await;

    let traced = app
        .client
        .get(format!("{}/", app.addr))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    let fresh = app.get("/").await;

    assert_eq!(traced.headers()["x-request-id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fresh.headers()["x-request-id"].len(), 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_increments_count_exactly_a_thousand() {
    // Generous timeouts: this is about counting, not about a starved CI machine's latency.
    let app = spawn_app_with(Role::All, &["--wait-timeout-ms", "5000", "--store-timeout-ms", "2000"]).await;
    let before = app.count_at("/").await;

    let requests = (0..1000).map(|_| {
        let (client, url) = (app.client.clone(), format!("{}/inc", app.addr));
        tokio::spawn(async move {
            let response = client.post(url).send().await.unwrap();
            let status = response.status();
            assert_eq!(status, 200, "{}", response.text().await.unwrap());
            response.text().await.unwrap().trim().parse::<i64>().unwrap()
        })
    });
    let mut values = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        values.push(request.await.unwrap());
    }

    values.sort();
    assert_eq!(values, ((before + 1)..=(before + 1000)).collect::<Vec<_>>(), "every acknowledgement is distinct");
    assert_eq!(app.primary.count("counter"), before + 1000);
    assert_eq!(app.count_at("/").await, before + 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_names_the_instance_that_served_it() {
    let app = spawn_app().await;
    let expected = format!("counter@{}", app.addr.trim_start_matches("http://"));

    for response in [app.get("/").await, app.post("/inc").await, app.get("/nope").await, app.get("/health/ready").await]
    {
        let url = response.url().clone();
        assert_eq!(
            response.headers().get("x-served-by").map(|v| v.to_str().unwrap()),
            Some(expected.as_str()),
            "{url}"
        );
    }
}
