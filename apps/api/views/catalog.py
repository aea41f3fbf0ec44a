from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import selectors as catalog_selectors

from .. import serializers


class PlanListView(APIView):
    @extend_schema(responses=serializers.PlanOut(many=True), summary="Active, public plans")
    def get(self, request):
        plans = catalog_selectors.public_plans()
        return Response(serializers.PlanOut(plans, many=True).data)


class CreditPackListView(APIView):
    @extend_schema(responses=serializers.CreditPackOut(many=True), summary="Active, public packs")
    def get(self, request):
        packs = catalog_selectors.public_credit_packs()
        return Response(serializers.CreditPackOut(packs, many=True).data)


class FeatureListView(APIView):
    @extend_schema(responses=serializers.FeatureOut(many=True), summary="Active features")
    def get(self, request):
        features = catalog_selectors.active_features()
        return Response(serializers.FeatureOut(features, many=True).data)
