use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(
    topic = "orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders-orders"
)]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
