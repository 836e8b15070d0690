use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", codec = "postcard")]
struct OrderPlaced {
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon: Option<String>,
}

#[derive(Serialize, Deserialize, IggyEvent)]
#[serde(tag = "type")]
#[iggy(topic = "orders", codec = "postcard")]
enum OrderEvent {
    Placed { order_id: u64 },
}

fn main() {}
