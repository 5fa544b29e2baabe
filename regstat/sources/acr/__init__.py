"""Azure Container Registry: its data-plane API (`source`, `listing`) and Entra ID sign-in (`entra`)."""
