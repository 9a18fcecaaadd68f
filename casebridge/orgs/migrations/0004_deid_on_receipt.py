# De-identification on receipt (issue 14, item 4): off for every existing organization.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orgs', '0003_baa_expiry'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='deidentify_on_receipt',
            field=models.BooleanField(default=False),
        ),
    ]
