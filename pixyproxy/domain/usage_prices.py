"""Built-in prices for the catalogue's models, by the provider's model id, from the vendors' price pages
(US dollars). A catalogue entry's `price` replaces its model's; a model absent here and without one has
its cost from PIXYPROXY_PRICES (or none)."""

from pixyproxy.domain.catalogue import ModelPrice

DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    "gpt-image-2.6-sunburst": ModelPrice(
        text_in_per_million=5, image_in_per_million=8, image_out_per_million=30
    ),
    "gpt-image-1.5": ModelPrice(text_in_per_million=5, image_in_per_million=8, image_out_per_million=32),
    "gpt-image-1-mini": ModelPrice(text_in_per_million=2, image_in_per_million=2.5, image_out_per_million=8),
    "gemini-nano-banana-2.1": ModelPrice(text_in_per_million=0.3, image_out_per_million=30),
    "gemini-3-pro-image": ModelPrice(
        text_in_per_million=2, image_in_per_million=2, image_out_per_million=120, text_out_per_million=12
    ),
    "pixyproxy-offline": ModelPrice(),
}


def default_model_price(model: str) -> ModelPrice | None:
    return DEFAULT_MODEL_PRICES.get(model)
