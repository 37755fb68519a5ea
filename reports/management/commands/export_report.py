import sys

from django.core.management.base import BaseCommand, CommandError

from reports.aggregates import report_table
from reports.csv_export import csv_write
from reports.filters import BUCKETS, KINDS, ReportFilterError, report_filters_parse


class Command(BaseCommand):
    help = "Write an analyst report as CSV (the same rows as the download on the reports page)."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("--out", required=True, help="File to write, or - for standard output.")
        parser.add_argument("--from", dest="date_from", help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="date_to", help="Last day (included), YYYY-MM-DD.")
        parser.add_argument("--platform")
        parser.add_argument("--category", help="Category slug, e.g. skincare.")
        parser.add_argument("--brand", help="Canonical name or slug of a KB brand.")
        parser.add_argument("--source", help="gold, auto (gold else the promoted generation; default) or gen-N.")
        parser.add_argument("--bucket", choices=BUCKETS)

    def handle(self, *args, **options):
        try:
            filters = report_filters_parse({k: options.get(k) for k in (
                "date_from", "date_to", "platform", "category", "brand", "source", "bucket")})
        except ReportFilterError as exc:
            raise CommandError(f"Bad filter value: {exc}") from exc
        header, rows = report_table(options["kind"], filters)
        if options["out"] == "-":
            count = csv_write(sys.stdout, header, rows)
        else:
            with open(options["out"], "w", encoding="utf-8", newline="") as out:
                count = csv_write(out, header, rows)
            self.stderr.write(f"{options['kind']}: {count} rows → {options['out']} ({filters.describe_source()})")
