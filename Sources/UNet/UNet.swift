// The UNet module; see ARCHITECTURE.md.
