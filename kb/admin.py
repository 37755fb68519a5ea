import io

from django import forms
from django.contrib import admin, messages
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from beautybrain_app.csv_cells import with_bom
from kb.linking import normalize
from kb.models import Brand, BrandAlias, Category
from kb.services import AliasConflict, KbFileNotUtf8, brands_export_csv, brands_import_csv, kb_csv_decode


class BrandAliasInlineForm(forms.ModelForm):
    class Meta:
        model = BrandAlias
        fields = ["alias", "origin"]

    def clean(self):
        cleaned = super().clean()
        alias = cleaned.get("alias") or ""
        key = normalize(alias)
        if alias and not key:
            self.add_error("alias", "An alias needs at least one letter or digit.")
            return cleaned
        brand = cleaned.get("brand") or (self.instance.brand if self.instance.brand_id else None)
        clash = BrandAlias.objects.filter(normalized=key).exclude(pk=self.instance.pk).select_related("brand").first()
        if clash and brand is not None and clash.brand_id != brand.pk:
            self.add_error("alias", str(AliasConflict(alias, key, clash.brand, brand)))
        elif clash:
            self.add_error("alias", f"{alias!r} is already an alias of {clash.brand.canonical_name!r}.")
        return cleaned

    def save(self, commit=True):
        self.instance.normalized = normalize(self.cleaned_data["alias"])
        return super().save(commit)


class BrandAliasInline(admin.TabularInline):
    model = BrandAlias
    form = BrandAliasInlineForm
    extra = 1
    fields = ["alias", "normalized", "origin"]
    readonly_fields = ["normalized"]


class CsvImportForm(forms.Form):
    file = forms.FileField(help_text="The kb_brands.csv format: canonical_name, aliases (pipe-separated), category, ...")


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ["canonical_name", "category", "alias_list", "is_ambiguous", "is_active", "parent_company", "country"]
    list_filter = ["category", "is_ambiguous", "is_active"]
    search_fields = ["canonical_name", "aliases__alias", "parent_company"]
    prepopulated_fields = {"slug": ["canonical_name"]}
    inlines = [BrandAliasInline]
    change_list_template = "admin/kb/brand/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("category").prefetch_related("aliases")

    @admin.display(description="aliases")
    def alias_list(self, obj):
        return ", ".join(a.alias for a in obj.aliases.all() if a.origin != "canonical")

    def get_urls(self):
        extra = [
            path("import-csv/", self.admin_site.admin_view(self.import_csv), name="kb_brand_import_csv"),
            path("export-csv/", self.admin_site.admin_view(self.export_csv), name="kb_brand_export_csv"),
        ]
        return extra + super().get_urls()

    def import_csv(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:kb_brand_changelist")
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                text = kb_csv_decode(form.cleaned_data["file"].read())
            except KbFileNotUtf8 as exc:
                messages.error(request, str(exc))
                return redirect("admin:kb_brand_changelist")
            result = brands_import_csv(stream=io.StringIO(text, newline=""))
            messages.info(request, result.summary())
            for error in result.errors[:50]:
                messages.warning(request, f"line {error['line']}: {error['error']}")
            return redirect("admin:kb_brand_changelist")
        return render(request, "admin/kb/brand/import_csv.html", {**self.admin_site.each_context(request),
                                                                    "form": form, "opts": self.model._meta,
                                                                    "title": "Import brands from CSV"})

    def export_csv(self, request):
        response = StreamingHttpResponse(with_bom(brands_export_csv()), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="brands.csv"'
        return response


@admin.register(BrandAlias)
class BrandAliasAdmin(admin.ModelAdmin):
    list_display = ["alias", "brand", "normalized", "origin"]
    search_fields = ["alias", "normalized", "brand__canonical_name"]
    list_select_related = ["brand"]
    raw_id_fields = ["brand"]
    readonly_fields = ["normalized"]
    form = BrandAliasInlineForm

    def get_fields(self, request, obj=None):
        return ["brand", "alias", "normalized", "origin"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "position"]
    ordering = ["position"]
