"""/v4/collections: a person's named lists of pipelines, as in Screwdriver."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    CollectionCreateSerializer,
    CollectionSerializer,
    CollectionUpdateSerializer,
    PipelineSerializer,
)
from pipelines.models import Collection, Pipeline
from pipelines.services import create_collection, delete_collection, update_collection
from screwdriver_site.api.base import ApiView
from screwdriver_site.api.permissions import PEOPLE, signed_in_user


def _own(request: Request, collection_id: int) -> Collection:
    # Someone else's collection is not found, whoever asks.
    return get_object_or_404(
        Collection.objects.prefetch_related("pipelines"),
        pk=collection_id,
        user=signed_in_user(request),
    )


class CollectionListView(ApiView):
    scopes = {"GET": PEOPLE, "POST": PEOPLE}

    @extend_schema(responses={200: CollectionSerializer(many=True)})
    def get(self, request: Request) -> Response:
        mine = Collection.objects.filter(user=signed_in_user(request)).prefetch_related("pipelines")
        return Response(CollectionSerializer(mine, many=True).data)

    @extend_schema(request=CollectionCreateSerializer, responses={201: CollectionSerializer})
    def post(self, request: Request) -> Response:
        body = CollectionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        collection = create_collection(
            user=signed_in_user(request),
            name=data["name"],
            description=data.get("description", ""),
            pipeline_ids=data.get("pipelineIds", []),
        )
        return Response(CollectionSerializer(collection).data, status=http.HTTP_201_CREATED)


class CollectionDetailView(ApiView):
    scopes = {"GET": PEOPLE, "PUT": PEOPLE, "DELETE": PEOPLE}

    @extend_schema(responses={200: CollectionSerializer})
    def get(self, request: Request, collection_id: int) -> Response:
        collection = _own(request, collection_id)
        data = CollectionSerializer(collection).data
        # Screwdriver returns the pipelines themselves, those the person can still read.
        readable = Pipeline.objects.readable_by(signed_in_user(request)).filter(
            pk__in=data["pipelineIds"]
        )
        data["pipelines"] = PipelineSerializer(readable, many=True).data
        return Response(data)

    @extend_schema(request=CollectionUpdateSerializer, responses={200: CollectionSerializer})
    def put(self, request: Request, collection_id: int) -> Response:
        collection = _own(request, collection_id)
        body = CollectionUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        collection = update_collection(
            collection=collection,
            name=data.get("name"),
            description=data.get("description"),
            pipeline_ids=data.get("pipelineIds"),
        )
        return Response(CollectionSerializer(collection).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, collection_id: int) -> Response:
        delete_collection(collection=_own(request, collection_id))
        return Response(status=http.HTTP_204_NO_CONTENT)
