//! The activator's state machine for one revision: when to ask the autoscaler for a replica.
//!
//! Knative's activator pokes the autoscaler at once on the first request that finds a revision
//! at zero, so that request does not wait for a metrics scrape. wisp does the same: the first
//! request to be held sends [`GatewayEvent::Activate`](crate::GatewayEvent::Activate), the
//! others held behind it do not (one poke per activation, not per request). If every held
//! request gives up before a replica is ready (the start failed, say), the next request pokes
//! again.
//!
//! Pure: [`Activation::step`] maps a state and an event to the next state and whether to send
//! the poke; `revision.rs` drives it under a small lock that the request path only takes when
//! there is no replica.

/// Whether a revision has ready replicas, as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// No replica, and nobody is waiting for one.
    #[default]
    Idle,
    /// No replica; the autoscaler was asked for one; requests are held.
    Activating,
    /// At least one ready replica: requests go straight through.
    Serving,
}

/// What happened to the revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationEvent {
    /// The endpoint list became non-empty.
    EndpointsReady,
    /// The endpoint list became empty.
    EndpointsGone,
    /// A request found no endpoint and is being held.
    RequestHeld,
    /// The last held request left (timed out or gave up) with still no endpoint.
    LastHeldLeft,
}

/// What the caller must do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Send `GatewayEvent::Activate` for this revision.
    Activate,
}

impl Activation {
    pub fn step(self, event: ActivationEvent) -> (Activation, Effect) {
        use Activation::*;
        use ActivationEvent::*;
        match (self, event) {
            // A replica became ready: whatever we were doing, serve.
            (_, EndpointsReady) => (Serving, Effect::None),
            // Scaled to zero: the next request must poke again.
            (Serving | Idle, EndpointsGone) => (Idle, Effect::None),
            // Replicas went away while we wait for one (a crash during start): keep waiting,
            // the autoscaler already knows there is demand.
            (Activating, EndpointsGone) => (Activating, Effect::None),
            // First request at zero: ask for a replica now, not at the next metrics tick.
            (Idle, RequestHeld) => (Activating, Effect::Activate),
            // Already asked: hold without asking again.
            (Activating, RequestHeld) => (Activating, Effect::None),
            // Endpoints appeared between the request's look and this step: it retries.
            (Serving, RequestHeld) => (Serving, Effect::None),
            // Everyone gave up waiting: forget the activation so the next request pokes.
            (Activating, LastHeldLeft) => (Idle, Effect::None),
            (state @ (Idle | Serving), LastHeldLeft) => (state, Effect::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ActivationEvent::*;
    use super::*;

    fn run(events: &[ActivationEvent]) -> (Activation, usize) {
        let mut state = Activation::default();
        let mut pokes = 0;
        for &event in events {
            let (next, effect) = state.step(event);
            if effect == Effect::Activate {
                pokes += 1;
            }
            state = next;
        }
        (state, pokes)
    }

    #[test]
    fn one_poke_per_activation_not_per_request() {
        assert_eq!(
            run(&[RequestHeld, RequestHeld, RequestHeld]),
            (Activation::Activating, 1)
        );
        assert_eq!(
            run(&[RequestHeld, RequestHeld, EndpointsReady]),
            (Activation::Serving, 1)
        );
    }

    #[test]
    fn scale_to_zero_then_traffic_pokes_again() {
        assert_eq!(
            run(&[
                RequestHeld,
                EndpointsReady,
                EndpointsGone,
                RequestHeld,
                RequestHeld
            ]),
            (Activation::Activating, 2)
        );
    }

    #[test]
    fn giving_up_rearms_the_poke() {
        assert_eq!(
            run(&[RequestHeld, LastHeldLeft, RequestHeld]),
            (Activation::Activating, 2)
        );
        // A crash while starting does not re-poke by itself: demand is already known.
        assert_eq!(
            run(&[RequestHeld, EndpointsGone, RequestHeld]),
            (Activation::Activating, 1)
        );
    }

    #[test]
    fn serving_ignores_stale_hold_events() {
        assert_eq!(
            run(&[EndpointsReady, RequestHeld, LastHeldLeft]),
            (Activation::Serving, 0)
        );
    }
}
