"""GET /models: the catalogue, with what each model takes, for clients and the gallery's generate form."""

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, TypeAdapter

from pixyproxy.entrypoints.dependencies import services
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import error_responses

router = APIRouter(tags=["models"])


class ModelInfo(BaseModel):
    name: str = Field(description="What a request's `model` names.")
    provider: str = Field(description="openai, azure, gemini or offline (its first deployment's).")
    providers: list[str] = Field(description="The providers of all its deployments.")
    deployments: int = Field(description="How many deployments serve it (balanced by weight).")
    default: bool = Field(description="Used when a request names no model.")
    aliases: list[str] = Field(description="Other names that mean this model.")
    fallbacks: list[str] = Field(description="Models tried in order when every deployment failed over.")
    options: dict[str, Any] = Field(
        description="Each option it takes: its values (null: any of the option's shape); `size` says the "
        "sizes it draws. An option absent here is refused (422) for this model."
    )
    edits: bool
    partial_images: bool = Field(description="Whether it streams previews.")
    checked: bool = Field(
        description="false: a compatible server's model PixyProxy has no table for; options go as asked."
    )
    price: dict[str, float] | None = Field(description="US dollars per image, megapixel, million tokens.")


_models_json = TypeAdapter(list[ModelInfo]).dump_json


def catalogue_models(request: Request) -> list[ModelInfo]:
    generator = services(request).generator()
    describe = getattr(generator, "describe_models", None)
    if describe is None:  # a generator without a catalogue (tests swap one in): its one model
        name = generator.default_model
        return [
            ModelInfo(
                name=name,
                provider=generator.name,
                providers=[generator.name],
                deployments=1,
                default=True,
                aliases=[],
                fallbacks=[],
                options={},
                edits=True,
                partial_images=True,
                checked=False,
                price=None,
            )
        ]
    return [ModelInfo.model_validate(model) for model in describe()]


@twin_routes(
    router,
    ["GET"],
    "/models",
    response_model=list[ModelInfo],
    summary="The model catalogue: names, providers, aliases, the options each takes, prices",
    responses=error_responses(),
)
async def list_models(request: Request) -> Response:
    return Response(_models_json(catalogue_models(request)), media_type="application/json")
