//! A small client for the three services' HTTP APIs, used by the demo and the tests.

use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub order: String,
    pub invoice: String,
    pub notification: String,
}

/// An HTTP answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    async fn from(r: reqwest::Response) -> anyhow::Result<Answer> {
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = r.text().await?;
        Ok(Answer {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }
}

/// A sample order body: `lines` of (sku, quantity, unit price in cents), EUR.
pub fn order_body(customer: &str, lines: &[(&str, i64, i64)]) -> Value {
    json!({
        "customer_id": customer,
        "lines": lines.iter().map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price_minor": p, "currency": "EUR"})).collect::<Vec<_>>()
    })
}

impl Client {
    pub fn for_stack(stack: &crate::stack::Stack) -> Client {
        use contracts::topology::Service;
        Client {
            http: stack.http.clone(),
            order: stack.url(Service::Order),
            invoice: stack.url(Service::Invoice),
            notification: stack.url(Service::Notification),
        }
    }

    pub async fn place_order(&self, body: &Value) -> anyhow::Result<Answer> {
        Answer::from(
            self.http
                .post(format!("{}/orders", self.order))
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    /// Places an order and returns its id; fails unless it is accepted.
    pub async fn place(&self, body: &Value) -> anyhow::Result<Uuid> {
        let answer = self.place_order(body).await?;
        anyhow::ensure!(answer.status == 202, "order not accepted: {answer:?}");
        Ok(serde_json::from_value(answer.body["order_id"].clone())?)
    }

    pub async fn order(&self, id: Uuid) -> anyhow::Result<Answer> {
        Answer::from(
            self.http
                .get(format!("{}/orders/{id}", self.order))
                .send()
                .await?,
        )
        .await
    }

    pub async fn cancel(&self, id: Uuid) -> anyhow::Result<Answer> {
        Answer::from(
            self.http
                .post(format!("{}/orders/{id}/cancel", self.order))
                .send()
                .await?,
        )
        .await
    }

    pub async fn invoices_of(&self, order_id: Uuid) -> anyhow::Result<Vec<Value>> {
        let a = Answer::from(
            self.http
                .get(format!("{}/invoices?order_id={order_id}", self.invoice))
                .send()
                .await?,
        )
        .await?;
        anyhow::ensure!(a.status == 200, "invoices: {a:?}");
        Ok(serde_json::from_value(a.body)?)
    }

    pub async fn notifications_of(&self, order_id: Uuid) -> anyhow::Result<Vec<Value>> {
        let a = Answer::from(
            self.http
                .get(format!(
                    "{}/notifications?order_id={order_id}",
                    self.notification
                ))
                .send()
                .await?,
        )
        .await?;
        anyhow::ensure!(a.status == 200, "notifications: {a:?}");
        Ok(serde_json::from_value(a.body)?)
    }

    /// The kinds of notification recorded for an order, sorted.
    pub async fn notification_kinds(&self, order_id: Uuid) -> anyhow::Result<Vec<String>> {
        let mut kinds: Vec<String> = self
            .notifications_of(order_id)
            .await?
            .iter()
            .filter_map(|n| n["kind"].as_str().map(str::to_string))
            .collect();
        kinds.sort();
        Ok(kinds)
    }
}
