use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", partitions = 4)]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
