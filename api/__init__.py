"""The web app: webhooks, the simulator, health; later the counsellor console and coordinator pages."""
