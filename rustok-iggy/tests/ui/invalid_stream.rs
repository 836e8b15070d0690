use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", stream = " shop")]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
