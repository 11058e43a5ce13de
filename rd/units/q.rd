<resource schema="epnml_units" resdir="units">
	<meta name="title">epnml units: Mercury spectral units from MESSENGER MASCS spectra found by machine learning</meta>
	<meta name="description">
		Spectral units of Mercury's surface from MESSENGER MASCS VIRS
		reflectance spectra gridded on the surface, separated by unsupervised
		learning (ICA, UMAP, agglomerative clustering) after the DLR Mercury
		surface composition science case, with mineral abundances estimated
		from laboratory spectra.  Outlines as pgSphere polygons in body
		coordinates.  This service is provisioned by the foundation and filled
		by the spectral-units pipeline.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">planetary-surfaces</meta>
	<meta name="subject">mercury-planet</meta>
	<meta name="creator">epnml team</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="source">10.5281/zenodo.7778172</meta>
	<meta name="referenceURL">https://doi.org/10.5281/zenodo.7778172</meta>
	<meta name="instrument">MESSENGER MASCS</meta>
	<meta name="facility">MESSENGER</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<meta name="description">
			Spectral units, one unit region per row (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<mixin spatial_frame_type="body"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition spatial_coordinate_description access_url access_format"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="unit_id" type="integer" ucd="meta.id;src.class"
			description="Spectral unit identifier">
			<values nullLiteral="-1"/>
		</column>
		<column name="cell_count" type="integer" ucd="meta.number"
			description="Number of grid cells">
			<values nullLiteral="-1"/>
		</column>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.units WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<regSuite title="epnml units regression">
		<regTest title="epn_core answers a time-overlap query through TAP">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_class FROM epnml_units.epn_core"
				>/tap/sync</url>
			<code>
				self.assertHasStrings("epnml_units")
			</code>
		</regTest>
	</regSuite>
</resource>
