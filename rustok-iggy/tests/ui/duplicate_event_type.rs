use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders")]
enum OrderEvent {
    #[iggy(event_type = "order.placed")]
    Placed { order_id: u64 },
    #[iggy(event_type = "order.placed", version = 2)]
    PlacedV2 { order_id: u64, tenant_id: String },
}

fn main() {}
