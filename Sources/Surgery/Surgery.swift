// The Surgery module; see ARCHITECTURE.md.
