//! A small client for the three services' HTTP APIs, used by the demo and the tests.
//!
//! Each request carries a bearer token from the stack's issuer: an order is
//! placed with its customer's token (the body's `customer_id`), read and
//! cancelled with the token of the customer who placed it, and invoices and
//! notifications are read with an operator's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuer::Minter;

/// The customer whose token reads an order this client did not place.
pub const DEFAULT_CUSTOMER: &str = "c-1";

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub order: String,
    pub invoice: String,
    pub notification: String,
    pub minter: Minter,
    /// Who placed each order this client placed.
    owners: Arc<Mutex<HashMap<Uuid, String>>>,
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
            minter: stack.issuer.minter(),
            owners: Arc::default(),
        }
    }

    /// The customer who placed `id` through this client, else the default one.
    pub fn owner_of(&self, id: Uuid) -> String {
        self.owners
            .lock()
            .ok()
            .and_then(|o| o.get(&id).cloned())
            .unwrap_or_else(|| DEFAULT_CUSTOMER.to_string())
    }

    /// Records that `customer` placed `id`: an order this client did not see
    /// accepted (its answer was lost with a crashed service) and that a test
    /// found in the database.
    pub fn placed_by(&self, id: Uuid, customer: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.insert(id, customer.to_string());
        }
    }

    fn customer_token(&self, customer: &str) -> anyhow::Result<String> {
        self.minter.customer_token(customer)
    }

    /// Places the order with the token of the body's customer.
    pub async fn place_order(&self, body: &Value) -> anyhow::Result<Answer> {
        let customer = body["customer_id"]
            .as_str()
            .unwrap_or(DEFAULT_CUSTOMER)
            .to_string();
        let answer = Answer::from(
            self.http
                .post(format!("{}/orders", self.order))
                .bearer_auth(self.customer_token(&customer)?)
                .json(body)
                .send()
                .await?,
        )
        .await?;
        if let Some(id) = answer.body["order_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
        {
            self.placed_by(id, &customer);
        }
        Ok(answer)
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
                .bearer_auth(self.customer_token(&self.owner_of(id))?)
                .send()
                .await?,
        )
        .await
    }

    pub async fn cancel(&self, id: Uuid) -> anyhow::Result<Answer> {
        Answer::from(
            self.http
                .post(format!("{}/orders/{id}/cancel", self.order))
                .bearer_auth(self.customer_token(&self.owner_of(id))?)
                .send()
                .await?,
        )
        .await
    }

    pub async fn invoices_of(&self, order_id: Uuid) -> anyhow::Result<Vec<Value>> {
        let a = Answer::from(
            self.http
                .get(format!("{}/invoices?order_id={order_id}", self.invoice))
                .bearer_auth(self.minter.operator_token()?)
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
                .bearer_auth(self.minter.operator_token()?)
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
