"""The review page's Blueprints, one module per area (registered by ``review_app.create_app``)."""
