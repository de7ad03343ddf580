// The Diffusion module; see ARCHITECTURE.md.
