use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = "tenant_id")]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
