"""The review page's Blueprints, one module per area (see ``review_app.VIEWS``)."""
