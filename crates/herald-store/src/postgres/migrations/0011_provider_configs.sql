-- Delivery provider configurations, one per environment and channel; `config` is the JSON that
-- PUT /v1/provider/{channel}/ accepted (herald_channels::ProviderConfig), secrets included.
CREATE TABLE provider_configs (
    env        TEXT NOT NULL,
    channel    TEXT NOT NULL,
    config     JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (env, channel)
);
