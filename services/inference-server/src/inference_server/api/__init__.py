"""HTTP routers: Kaito's classic API, the OpenAI API, health, models, adapters and metrics."""
