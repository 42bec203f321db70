"""HTTP adapters: the app factory and cross-cutting middleware. Capabilities keep their routes beside them."""
